using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>Why clusters are freed (QEMU's qcow2_discard_type); decides whether the freed range is discarded in the file.</summary>
internal enum Qcow2DiscardType
{
    Never,
    Always,
    Request,
    Snapshot,
    Other,
}

/// <summary>
/// Host cluster management: the refcount table (kept in memory, at most 8 MiB as in QEMU), refcount blocks (through a
/// <see cref="Qcow2MetadataCache"/>), the first-fit cluster allocator and refcount table growth with self-describing
/// refcount blocks. The mirror of QEMU's <c>qcow2-refcount.c</c>; the allocation order is QEMU's, so that images qimg
/// creates have QEMU's layout.
/// </summary>
/// <remarks>
/// Not thread-safe: every call happens under the image's metadata lock. Ordering rules kept here: a new refcount
/// block is written (and flushed) before the refcount table entry pointing to it; a new refcount table is written
/// before the header points to it; and refcount decreases wait for the L2 tables that dropped the references.
/// </remarks>
internal sealed class Qcow2Refcounts
{
    private readonly BlockNode _file;
    private readonly Qcow2Header _header;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _order;
    private readonly int _blockBits;
    private readonly long _blockEntries;
    private readonly ulong _maxRefcount;
    private readonly List<(long Offset, long Length)> _discards = [];
    private readonly Qcow2FreedClusters _freed = new();
    private readonly long _reuseThreshold;
    private long _freedEpoch;
    private bool _freeingL2References;
    private Qcow2MetadataCache _l2Cache = null!;
    private ulong[] _table;
    private int _maxTableIndex;
    private long _freeByteOffset;

    private Qcow2Refcounts(BlockNode file, Qcow2Header header, ulong[] table, Qcow2MetadataCache blockCache)
    {
        _file = file;
        _header = header;
        _clusterBits = header.ClusterBits;
        _clusterSize = header.ClusterSize;
        _order = header.RefcountOrder;
        _blockEntries = Qcow2RefcountBlock.EntriesPerBlock(_clusterSize, _order);
        _blockBits = System.Numerics.BitOperations.Log2((ulong)_blockEntries);
        _maxRefcount = Qcow2RefcountBlock.MaxRefcount(_order);
        _table = table;
        BlockCache = blockCache;
        _reuseThreshold = Math.Max(16, ReuseThresholdBytes >> _clusterBits);
        UpdateMaxTableIndex();
    }

    /// <summary>
    /// How many bytes of freed clusters may wait before an allocation that meets one of them makes the drops durable
    /// (one L2 cache flush) instead of allocating past them; bounds how far the file grows because of the rule.
    /// </summary>
    private const long ReuseThresholdBytes = 32L << 20;

    /// <summary>The refcount block cache.</summary>
    public Qcow2MetadataCache BlockCache { get; }

    /// <summary>The L2 table cache (set by the image after both exist); its flushes make freed clusters reusable.</summary>
    public Qcow2MetadataCache L2Cache
    {
        get => _l2Cache;
        set
        {
            _l2Cache = value;
            value.FlushObserver = OnL2CacheFlushStarting;
        }
    }

    /// <summary>Number of freed clusters not yet reusable (tests).</summary>
    internal long WaitingFreedClusters => _freed.Clusters;

    /// <summary>Cluster index where the next search for free clusters starts (QEMU's free_cluster_index).</summary>
    public long FreeClusterIndex { get; set; }

    /// <summary>Collect freed ranges instead of discarding them at once (QEMU's cache_discards).</summary>
    public bool CacheDiscards { get; set; }

    /// <summary>
    /// Which kinds of frees pass a discard down to the file (QEMU's discard_passthrough). Guest discards are passed
    /// down, as QEMU does for every image opened with BDRV_O_UNMAP (qemu-img convert, commit, qemu-io); without that
    /// flag QEMU ignores discards altogether, which this seam has no way to ask for.
    /// </summary>
    public Func<Qcow2DiscardType, bool> DiscardPassthrough { get; set; } = static type => type is Qcow2DiscardType.Always or Qcow2DiscardType.Request or Qcow2DiscardType.Snapshot;

    /// <summary>Whether refcount updates must reach the disk before L2 updates (false while lazy refcounts keep the image dirty).</summary>
    public Func<bool> NeedAccurateRefcounts { get; set; } = static () => true;

    /// <summary>Receives QEMU's stderr lines for failures it only reports (freeing clusters).</summary>
    public Action<string>? Message { get; set; }

    public long TableOffset => (long)_header.RefcountTableOffset;

    /// <summary>Number of entries in the refcount table.</summary>
    public int TableSize => _table.Length;

    public int Order => _order;

    /// <summary>Number of refcount entries per block.</summary>
    public long BlockEntries => _blockEntries;

    /// <summary>The refcount table entry <paramref name="index"/> (the offset of a refcount block, or 0).</summary>
    public long TableEntry(int index) => (long)(_table[index] & Qcow2Layout.RefcountTableOffsetMask);

    /// <summary>The refcount table entry <paramref name="index"/> as stored, reserved bits included (for the check).</summary>
    public ulong RawTableEntry(int index) => _table[index];

    /// <summary>
    /// Makes <paramref name="table"/> (already written at <paramref name="offset"/>, and pointed to by the header on disk)
    /// the refcount table, as the check's rebuild of the refcount structure does. The block cache must hold no blocks.
    /// </summary>
    public void ReplaceTable(ulong[] table, long offset, uint clusters)
    {
        _table = table;
        _header.RefcountTableOffset = (ulong)offset;
        _header.RefcountTableClusters = clusters;
        UpdateMaxTableIndex();
    }

    /// <summary>Loads the refcount table the header points to (at most 8 MiB, as the header validation guarantees).</summary>
    public static async ValueTask<Qcow2Refcounts> LoadAsync(BlockNode file, Qcow2Header header, Qcow2MetadataCache blockCache, CancellationToken cancellationToken)
    {
        long entries = (long)header.RefcountTableClusters << (header.ClusterBits - 3);
        var table = new ulong[entries];
        await Qcow2ClusterMap.ReadTableAsync(file, (long)header.RefcountTableOffset, table, cancellationToken).ConfigureAwait(false);

        return new Qcow2Refcounts(file, header, table, blockCache);
    }

    private void UpdateMaxTableIndex()
    {
        int i = _table.Length - 1;
        while (i > 0 && (_table[i] & Qcow2Layout.RefcountTableOffsetMask) == 0)
        {
            i--;
        }

        _maxTableIndex = Math.Max(i, 0);
    }

    // ------------------------------------------------------------ reading refcounts

    /// <summary>The refcount of host cluster <paramref name="clusterIndex"/> (0 beyond the table).</summary>
    public async ValueTask<ulong> GetRefcountAsync(long clusterIndex, CancellationToken cancellationToken)
    {
        long tableIndex = clusterIndex >> _blockBits;
        if (tableIndex >= _table.Length)
        {
            return 0;
        }

        long blockOffset = (long)(_table[tableIndex] & Qcow2Layout.RefcountTableOffsetMask);
        if (blockOffset == 0)
        {
            return 0;
        }

        if ((blockOffset & (_clusterSize - 1)) != 0)
        {
            Qcow2ThrowHelper.Corruption($"Refblock offset {Qcow2ThrowHelper.Hex(blockOffset)} unaligned (reftable index: {Qcow2ThrowHelper.Hex(tableIndex)})");
        }

        Qcow2CachedTable block = await BlockCache.GetAsync(blockOffset, cancellationToken).ConfigureAwait(false);
        try
        {
            return Qcow2RefcountBlock.Get(block.Data, clusterIndex & (_blockEntries - 1), _order);
        }
        finally
        {
            BlockCache.Release(block);
        }
    }

    // ------------------------------------------------------------ allocation

    /// <summary>
    /// Allocates <paramref name="size"/> bytes of contiguous clusters, first fit from <see cref="FreeClusterIndex"/>,
    /// and sets their refcounts to 1 (QEMU's qcow2_alloc_clusters).
    /// </summary>
    /// <returns>The host offset of the first cluster.</returns>
    public async ValueTask<long> AllocateClustersAsync(long size, CancellationToken cancellationToken)
    {
        while (true)
        {
            long offset = await FindFreeClustersAsync(size, Qcow2Layout.MaxClusterOffset, cancellationToken).ConfigureAwait(false);
            if (!await UpdateRefcountAsync(offset, size, 1, false, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false))
            {
                return offset;
            }
        }
    }

    /// <summary>
    /// Allocates up to <paramref name="count"/> clusters starting exactly at <paramref name="offset"/>, stopping at the
    /// first one in use (QEMU's qcow2_alloc_clusters_at).
    /// </summary>
    /// <returns>How many clusters were allocated.</returns>
    public async ValueTask<long> AllocateClustersAtAsync(long offset, long count, CancellationToken cancellationToken)
    {
        if (count == 0)
        {
            return 0;
        }

        while (true)
        {
            long clusterIndex = offset >> _clusterBits;
            long free = 0;
            for (; free < count; free++)
            {
                if ((!_freed.IsEmpty && _freed.Contains(clusterIndex + free, out _)) || await GetRefcountAsync(clusterIndex + free, cancellationToken).ConfigureAwait(false) != 0)
                {
                    break;
                }
            }

            if (!await UpdateRefcountAsync(offset, free << _clusterBits, 1, false, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false))
            {
                return free;
            }
        }
    }

    /// <summary>
    /// Allocates <paramref name="size"/> bytes (at most a cluster) for a compressed cluster, packing them after the
    /// previous compressed cluster when they fit (QEMU's qcow2_alloc_bytes): every host cluster the bytes touch gets one
    /// more reference.
    /// </summary>
    /// <returns>The host offset of the bytes (usually not cluster aligned).</returns>
    public async ValueTask<long> AllocateBytesAsync(int size, CancellationToken cancellationToken)
    {
        long offset = _freeByteOffset;
        if (offset != 0 && ((!_freed.IsEmpty && _freed.Contains(offset >> _clusterBits, out _)) || await GetRefcountAsync(offset >> _clusterBits, cancellationToken).ConfigureAwait(false) == _maxRefcount))
        {
            offset = 0;
        }

        long freeInCluster = _clusterSize - (offset & (_clusterSize - 1));
        bool again;
        do
        {
            if (offset == 0 || freeInCluster < size)
            {
                long maxOffset = Math.Min((long)Qcow2L2Entry.CompressedOffsetMask(_clusterBits), Qcow2Layout.MaxClusterOffset);
                long newCluster = await FindFreeClustersAsync(_clusterSize, maxOffset, cancellationToken).ConfigureAwait(false);
                if (newCluster == 0)
                {
                    Qcow2ThrowHelper.Corruption("Preventing invalid allocation of compressed cluster at offset 0");
                }

                if (offset == 0 || ((offset + _clusterSize - 1) & ~(long)(_clusterSize - 1)) != newCluster)
                {
                    offset = newCluster;
                    freeInCluster = _clusterSize;
                }
                else
                {
                    freeInCluster += _clusterSize;
                }
            }

            again = await UpdateRefcountAsync(offset, size, 1, false, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false);
            if (again)
            {
                offset = 0;
            }
        }
        while (again);

        // The new references must reach the disk before the L2 entry that uses them.
        await L2Cache.SetDependencyAsync(BlockCache, cancellationToken).ConfigureAwait(false);
        _freeByteOffset = offset + size;
        if ((_freeByteOffset & (_clusterSize - 1)) == 0)
        {
            _freeByteOffset = 0;
        }

        return offset;
    }

    /// <summary>Decrements the refcounts of the clusters in the range; failures are reported and leak the clusters, as in QEMU.</summary>
    public async ValueTask FreeClustersAsync(long offset, long size, Qcow2DiscardType type, CancellationToken cancellationToken)
    {
        try
        {
            await UpdateRefcountAsync(offset, size, 1, true, type, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            Message?.Invoke($"qcow2_free_clusters failed: {e.Message}");
        }
    }

    /// <summary>
    /// Frees clusters whose last reference was an L2 entry changed in the L2 cache: those that drop to 0 are not
    /// reused before the next L2 cache flush (the other frees follow a table written and flushed, and are reusable at once).
    /// </summary>
    public async ValueTask FreeL2ReferencedClustersAsync(long offset, long size, Qcow2DiscardType type, CancellationToken cancellationToken)
    {
        _freeingL2References = true;
        try
        {
            await FreeClustersAsync(offset, size, type, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _freeingL2References = false;
        }
    }

    /// <summary>
    /// Finds <paramref name="size"/> bytes of free clusters without taking them (QEMU's alloc_clusters_noref): the
    /// search moves <see cref="FreeClusterIndex"/> past them.
    /// </summary>
    private async ValueTask<long> FindFreeClustersAsync(long size, long maxOffset, CancellationToken cancellationToken)
    {
        if (CacheDiscards)
        {
            await ProcessDiscardsAsync(true, cancellationToken).ConfigureAwait(false);
        }

        long count = (size + _clusterSize - 1) >> _clusterBits;
    retry:
        for (long i = 0; i < count; i++)
        {
            long index = FreeClusterIndex++;
            if (!_freed.IsEmpty && _freed.Contains(index, out long end))
            {
                // Freed in this session, and the dropped reference may not be durable yet: skip it, or, once enough
                // waits, make every drop durable at once (the flush releases them and lowers FreeClusterIndex).
                if (_freed.Clusters >= _reuseThreshold || _freed.RangeCount >= Qcow2FreedClusters.MaxRanges)
                {
                    FreeClusterIndex = index;
                    await MakeFreedClustersReusableAsync(cancellationToken).ConfigureAwait(false);
                    if (!_freed.IsEmpty && _freed.Contains(FreeClusterIndex, out end))
                    {
                        // Something freed during the flush itself: allocate past it this time.
                        FreeClusterIndex = end;
                    }
                }
                else
                {
                    FreeClusterIndex = end;
                }

                goto retry;
            }

            if (await GetRefcountAsync(index, cancellationToken).ConfigureAwait(false) != 0)
            {
                goto retry;
            }
        }

        if (FreeClusterIndex > 0 && FreeClusterIndex - 1 > maxOffset >> _clusterBits)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }

        return (FreeClusterIndex - count) << _clusterBits;
    }

    /// <summary>
    /// Adds or subtracts <paramref name="addend"/> to the refcount of every cluster touching the range (QEMU's
    /// update_refcount), allocating refcount blocks as needed.
    /// </summary>
    /// <returns>
    /// True when a refcount block had to be allocated first: the partial update was undone and the caller must search
    /// for free clusters again (QEMU's -EAGAIN), because the new metadata may sit where it meant to allocate.
    /// </returns>
    public async ValueTask<bool> UpdateRefcountAsync(long offset, long length, ulong addend, bool decrease, Qcow2DiscardType type, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length == 0)
        {
            return false;
        }

        if (decrease)
        {
            // The L2 entries that dropped these references must be on disk before the refcounts go down.
            await BlockCache.SetDependencyAsync(L2Cache, cancellationToken).ConfigureAwait(false);
        }

        long start = offset & ~(long)(_clusterSize - 1);
        long last = (offset + length - 1) & ~(long)(_clusterSize - 1);
        long clusterOffset = start;
        long previousTableIndex = -1;
        Qcow2CachedTable? block = null;
        bool again = false;
        Exception? failure = null;
        try
        {
            for (; clusterOffset <= last; clusterOffset += _clusterSize)
            {
                long clusterIndex = clusterOffset >> _clusterBits;
                long tableIndex = clusterIndex >> _blockBits;
                if (tableIndex != previousTableIndex)
                {
                    if (block is not null)
                    {
                        BlockCache.Release(block);
                        block = null;
                    }

                    (bool retry, block) = await GetOrAllocateBlockAsync(clusterIndex, cancellationToken).ConfigureAwait(false);
                    if (retry)
                    {
                        if (FreeClusterIndex > start >> _clusterBits)
                        {
                            FreeClusterIndex = start >> _clusterBits;
                        }

                        again = true;
                        break;
                    }
                }

                previousTableIndex = tableIndex;
                Qcow2MetadataCache.MarkDirty(block!);
                long blockIndex = clusterIndex & (_blockEntries - 1);
                ulong refcount = Qcow2RefcountBlock.Get(block!.Data, blockIndex, _order);
                if (decrease ? refcount < addend : refcount + addend < refcount || refcount + addend > _maxRefcount)
                {
                    throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
                }

                refcount = decrease ? refcount - addend : refcount + addend;
                if (refcount == 0 && clusterIndex < FreeClusterIndex)
                {
                    FreeClusterIndex = clusterIndex;
                }

                Qcow2RefcountBlock.Set(block.Data, blockIndex, refcount, _order);
                if (refcount == 0)
                {
                    if (decrease && _freeingL2References)
                    {
                        NoteFreed(clusterIndex);
                    }

                    // A freed cluster may have been metadata: drop stale cached copies so they are never written back.
                    Qcow2CachedTable? stale = BlockCache.Find(clusterOffset);
                    if (stale is not null)
                    {
                        if (stale == block)
                        {
                            BlockCache.Release(block);
                            block = null;
                            previousTableIndex = -1;
                        }

                        Qcow2MetadataCache.Discard(stale);
                    }

                    stale = L2Cache.Find(clusterOffset);
                    if (stale is not null)
                    {
                        Qcow2MetadataCache.Discard(stale);
                    }

                    if (DiscardPassthrough(type))
                    {
                        AddDiscard(clusterOffset, _clusterSize);
                    }
                }
            }
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            if (block is not null)
            {
                BlockCache.Release(block);
            }
        }

        if (!CacheDiscards)
        {
            await ProcessDiscardsAsync(failure is null, cancellationToken).ConfigureAwait(false);
        }

        if (failure is not null || again)
        {
            // Undo what was done so far; this may fail too, which is then ignored (QEMU does the same).
            if (clusterOffset > offset)
            {
                try
                {
                    await UpdateRefcountAsync(offset, clusterOffset - offset, addend, !decrease, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or InvalidDataException)
                {
                }
            }

            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }

        return again;
    }

    /// <summary>
    /// The refcount block covering <paramref name="clusterIndex"/>, allocating it (and growing the refcount table)
    /// when missing (QEMU's alloc_refcount_block). Returns (true, null) after allocating: the caller must restart.
    /// </summary>
    private async ValueTask<(bool Retry, Qcow2CachedTable? Block)> GetOrAllocateBlockAsync(long clusterIndex, CancellationToken cancellationToken)
    {
        long tableIndex = clusterIndex >> _blockBits;
        if (tableIndex < _table.Length)
        {
            long blockOffset = (long)(_table[tableIndex] & Qcow2Layout.RefcountTableOffsetMask);
            if (blockOffset != 0)
            {
                if ((blockOffset & (_clusterSize - 1)) != 0)
                {
                    Qcow2ThrowHelper.Corruption($"Refblock offset {Qcow2ThrowHelper.Hex(blockOffset)} unaligned (reftable index: {Qcow2ThrowHelper.Hex(tableIndex)})");
                }

                return (false, await BlockCache.GetAsync(blockOffset, cancellationToken).ConfigureAwait(false));
            }
        }

        // Allocating: the refcount table is about to change, and L2 tables may depend on it.
        await L2Cache.FlushAsync(cancellationToken).ConfigureAwait(false);

        long newBlock = await FindFreeClustersAsync(_clusterSize, long.MaxValue, cancellationToken).ConfigureAwait(false);
        if (newBlock == 0)
        {
            Qcow2ThrowHelper.Corruption("Preventing invalid allocation of refcount block at offset 0");
        }

        Qcow2CachedTable block;
        if (newBlock >> (_clusterBits + _blockBits) == clusterIndex >> _blockBits)
        {
            // The new block describes itself.
            block = await BlockCache.GetEmptyAsync(newBlock, cancellationToken).ConfigureAwait(false);
            Array.Clear(block.Data);
            Qcow2RefcountBlock.Set(block.Data, (newBlock >> _clusterBits) & (_blockEntries - 1), 1, _order);
        }
        else
        {
            // Described by another block; this recurses at most twice before a block describes itself.
            if (await UpdateRefcountAsync(newBlock, _clusterSize, 1, false, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false))
            {
                return (true, null);
            }

            await BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
            block = await BlockCache.GetEmptyAsync(newBlock, cancellationToken).ConfigureAwait(false);
            Array.Clear(block.Data);
        }

        // The block reaches the disk before anything points to it.
        Qcow2MetadataCache.MarkDirty(block);
        try
        {
            await BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            BlockCache.Release(block);
        }

        if (tableIndex < _table.Length)
        {
            byte[] entry = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(entry, (ulong)newBlock);
            await WriteSyncAsync((long)_header.RefcountTableOffset + tableIndex * Qcow2Layout.RefcountTableEntrySize, entry, cancellationToken).ConfigureAwait(false);
            _table[tableIndex] = (ulong)newBlock;
            _maxTableIndex = Math.Max(_maxTableIndex, (int)tableIndex);
            return (true, null);
        }

        // The table is full: build a new, larger table and the refcount blocks covering it and themselves, past
        // everything that is counted so far, then switch to it in one header update.
        long blocksUsed = DivRoundUp(Math.Max(clusterIndex + 1, (newBlock >> _clusterBits) + 1), _blockEntries);
        long areaStart = blocksUsed * _blockEntries * _clusterSize;
        await CreateRefcountAreaAsync(areaStart, 0, false, (int)tableIndex, newBlock, cancellationToken).ConfigureAwait(false);
        return (true, null);
    }

    /// <summary>
    /// Creates, at <paramref name="startOffset"/> (past all used space), a new refcount table and the refcount blocks
    /// that cover themselves, the table and <paramref name="additionalClusters"/> more clusters beyond, then switches the
    /// header to the new table (QEMU's qcow2_refcount_area).
    /// </summary>
    /// <returns>The offset just past the new structures, where the additional clusters may go.</returns>
    public async ValueTask<long> CreateRefcountAreaAsync(long startOffset, long additionalClusters, bool exactSize, int newBlockIndex, long newBlockOffset, CancellationToken cancellationToken)
    {
        Qcow2RefcountBlock.MetadataSize((startOffset >> _clusterBits) + additionalClusters, _clusterSize, _order, !exactSize, out long totalBlocks);
        long tableEntries = exactSize ? totalBlocks : totalBlocks + DivRoundUp(totalBlocks, 2);
        long entriesPerCluster = _clusterSize / Qcow2Layout.RefcountTableEntrySize;
        tableEntries = DivRoundUp(tableEntries, entriesPerCluster) * entriesPerCluster;

        // QEMU compares the entry count with the byte limit here and can write tables it then refuses to open;
        // qimg keeps the table within what can be opened.
        if (tableEntries * Qcow2Layout.RefcountTableEntrySize > Qcow2Layout.MaxRefcountTableBytes)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }

        long tableClusters = tableEntries / entriesPerCluster;
        long areaTableIndex = (startOffset >> _clusterBits) / _blockEntries;
        var newTable = new ulong[tableEntries];
        Array.Copy(_table, newTable, Math.Min(tableEntries > _maxTableIndex ? _maxTableIndex + 1 : tableEntries, _table.Length));
        if (newBlockOffset != 0)
        {
            newTable[newBlockIndex] = (ulong)newBlockOffset;
        }

        long newBlocks = 0;
        for (long i = areaTableIndex; i < totalBlocks; i++)
        {
            if (newTable[i] == 0)
            {
                newBlocks++;
            }
        }

        long tableOffset = startOffset + newBlocks * _clusterSize;
        long endOffset = tableOffset + tableClusters * _clusterSize;
        long blockOffset = startOffset;
        for (long i = areaTableIndex; i < totalBlocks; i++)
        {
            Qcow2CachedTable block;
            if (newTable[i] != 0)
            {
                block = await BlockCache.GetAsync((long)newTable[i], cancellationToken).ConfigureAwait(false);
            }
            else
            {
                block = await BlockCache.GetEmptyAsync(blockOffset, cancellationToken).ConfigureAwait(false);
                Array.Clear(block.Data);
                Qcow2MetadataCache.MarkDirty(block);
                newTable[i] = (ulong)blockOffset;
                blockOffset += _clusterSize;
            }

            try
            {
                long firstCovered = i * _blockEntries * _clusterSize;
                if (firstCovered < endOffset)
                {
                    long j = firstCovered < startOffset ? (startOffset - firstCovered) >> _clusterBits : 0;
                    long endIndex = Math.Min((endOffset - firstCovered) >> _clusterBits, _blockEntries);
                    for (; j < endIndex; j++)
                    {
                        if (Qcow2RefcountBlock.Get(block.Data, j, _order) != 0)
                        {
                            Qcow2ThrowHelper.Corruption($"Refcount of cluster {Qcow2ThrowHelper.Hex((firstCovered >> _clusterBits) + j)} in the new refcount area is not zero");
                        }

                        Qcow2RefcountBlock.Set(block.Data, j, 1, _order);
                    }

                    Qcow2MetadataCache.MarkDirty(block);
                }
            }
            finally
            {
                BlockCache.Release(block);
            }
        }

        // Blocks first, then the table, then the header that makes it live.
        await BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
        byte[] raw = new byte[tableEntries * Qcow2Layout.RefcountTableEntrySize];
        for (long i = 0; i < tableEntries; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan((int)(i * 8)), newTable[i]);
        }

        await WriteSyncAsync(tableOffset, raw, cancellationToken).ConfigureAwait(false);
        byte[] pointer = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(pointer, (ulong)tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(pointer.AsSpan(8), (uint)tableClusters);
        await WriteSyncAsync(Qcow2Layout.RefcountTableOffsetOffset, pointer, cancellationToken).ConfigureAwait(false);

        long oldOffset = (long)_header.RefcountTableOffset;
        long oldBytes = (long)_table.Length * Qcow2Layout.RefcountTableEntrySize;
        _table = newTable;
        _header.RefcountTableOffset = (ulong)tableOffset;
        _header.RefcountTableClusters = (uint)tableClusters;
        UpdateMaxTableIndex();
        await FreeClustersAsync(oldOffset, oldBytes, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
        return endOffset;
    }

    /// <summary>
    /// Drops refcount blocks that count nothing but themselves (QEMU's qcow2_shrink_reftable, after an image shrank): the
    /// refcount table is rewritten without them first, then their clusters are freed.
    /// </summary>
    public async ValueTask ShrinkTableAsync(CancellationToken cancellationToken)
    {
        var kept = new ulong[_table.Length];
        for (int i = 0; i < _table.Length; i++)
        {
            long blockOffset = (long)(_table[i] & Qcow2Layout.RefcountTableOffsetMask);
            if (blockOffset == 0)
            {
                continue;
            }

            Qcow2CachedTable block = await BlockCache.GetAsync(blockOffset, cancellationToken).ConfigureAwait(false);
            bool unused;
            try
            {
                if (i == blockOffset >> (_clusterBits + _blockBits))
                {
                    // The block counts itself: ignore that reference.
                    long own = (blockOffset >> _clusterBits) & (_blockEntries - 1);
                    ulong refcount = Qcow2RefcountBlock.Get(block.Data, own, _order);
                    Qcow2RefcountBlock.Set(block.Data, own, 0, _order);
                    unused = block.Data.AsSpan().IndexOfAnyExcept((byte)0) < 0;
                    Qcow2RefcountBlock.Set(block.Data, own, refcount, _order);
                }
                else
                {
                    unused = block.Data.AsSpan().IndexOfAnyExcept((byte)0) < 0;
                }
            }
            finally
            {
                BlockCache.Release(block);
            }

            kept[i] = unused ? 0 : _table[i];
        }

        byte[] raw = new byte[(long)_table.Length * Qcow2Layout.RefcountTableEntrySize];
        for (int i = 0; i < kept.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), kept[i]);
        }

        await WriteSyncAsync(TableOffset, raw, cancellationToken).ConfigureAwait(false);
        for (int i = 0; i < _table.Length; i++)
        {
            if (_table[i] != 0 && kept[i] == 0)
            {
                await DiscardRefcountBlockAsync((long)(_table[i] & Qcow2Layout.RefcountTableOffsetMask), cancellationToken).ConfigureAwait(false);
                _table[i] = 0;
            }
        }

        UpdateMaxTableIndex();
        if (!CacheDiscards)
        {
            await ProcessDiscardsAsync(true, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Frees an unused refcount block's own cluster (QEMU's qcow2_discard_refcount_block).</summary>
    private async ValueTask DiscardRefcountBlockAsync(long blockOffset, CancellationToken cancellationToken)
    {
        long clusterIndex = blockOffset >> _clusterBits;
        long tableIndex = clusterIndex >> _blockBits;
        long covering = tableIndex < _table.Length ? (long)(_table[tableIndex] & Qcow2Layout.RefcountTableOffsetMask) : 0;
        if (covering == 0)
        {
            Qcow2ThrowHelper.Corruption($"Refblock at {Qcow2ThrowHelper.Hex(blockOffset)} is not covered by the refcount structures");
        }

        Qcow2CachedTable block = await BlockCache.GetAsync(covering, cancellationToken).ConfigureAwait(false);
        try
        {
            long index = clusterIndex & (_blockEntries - 1);
            ulong refcount = Qcow2RefcountBlock.Get(block.Data, index, _order);
            if (refcount != 1)
            {
                Qcow2ThrowHelper.Corruption($"Invalid refcount: refblock offset {Qcow2ThrowHelper.Hex(covering)}, reftable index {tableIndex}, block offset {Qcow2ThrowHelper.Hex(blockOffset)}, refcount {Qcow2ThrowHelper.Hex(refcount)}");
            }

            Qcow2RefcountBlock.Set(block.Data, index, 0, _order);
            Qcow2MetadataCache.MarkDirty(block);
        }
        finally
        {
            BlockCache.Release(block);
        }

        if (clusterIndex < FreeClusterIndex)
        {
            FreeClusterIndex = clusterIndex;
        }

        Qcow2CachedTable? stale = BlockCache.Find(blockOffset);
        if (stale is not null)
        {
            Qcow2MetadataCache.Discard(stale);
        }

        if (DiscardPassthrough(Qcow2DiscardType.Always))
        {
            AddDiscard(blockOffset, _clusterSize);
        }
    }

    /// <summary>Index of the last cluster below <paramref name="size"/> bytes with a non-zero refcount (QEMU's qcow2_get_last_cluster).</summary>
    public async ValueTask<long> GetLastUsedClusterAsync(long size, CancellationToken cancellationToken)
    {
        for (long i = ((size + _clusterSize - 1) >> _clusterBits) - 1; i >= 0; i--)
        {
            if (await GetRefcountAsync(i, cancellationToken).ConfigureAwait(false) > 0)
            {
                return i;
            }
        }

        Qcow2ThrowHelper.Corruption("There are no references in the refcount table.");
        return -1;
    }

    // ------------------------------------------------------------ reuse of freed clusters

    /// <summary>
    /// Cluster <paramref name="clusterIndex"/> just lost its last reference: the metadata that dropped it (an L2 entry in
    /// the cache, or a table written just before) may not be in the file yet, so the cluster waits until the next L2
    /// cache flush before it can be allocated again. Reusing it earlier lets a crash leave the old reference pointing at
    /// new data.
    /// </summary>
    private void NoteFreed(long clusterIndex)
    {
        _freed.Add(clusterIndex);
        _freedEpoch++;
    }

    /// <summary>Flushes the L2 cache (and through its dependency the refcount blocks), which releases the waiting clusters.</summary>
    public async ValueTask MakeFreedClustersReusableAsync(CancellationToken cancellationToken)
    {
        if (!_freed.IsEmpty)
        {
            await L2Cache.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// An L2 cache flush starts: once it has written every dirty table and flushed the file, every drop noted before it
    /// is durable (L2 entries through the cache; L1 entries, refcount tables and other tables are written with a flush
    /// before their clusters are freed). Drops noted during the flush wait for the next one.
    /// </summary>
    private Action? OnL2CacheFlushStarting()
    {
        if (_freed.IsEmpty)
        {
            return null;
        }

        long epoch = _freedEpoch;
        return () =>
        {
            if (_freedEpoch == epoch && !_freed.IsEmpty)
            {
                if (_freed.Lowest < FreeClusterIndex)
                {
                    FreeClusterIndex = _freed.Lowest;
                }

                _freed.Clear();
            }
        };
    }

    // ------------------------------------------------------------ discards

    private void AddDiscard(long offset, long length)
    {
        for (int i = 0; i < _discards.Count; i++)
        {
            (long o, long l) = _discards[i];
            if (offset == o + l)
            {
                _discards[i] = (o, l + length);
                return;
            }

            if (offset + length == o)
            {
                _discards[i] = (offset, l + length);
                return;
            }
        }

        _discards.Add((offset, length));
    }

    /// <summary>Passes the collected freed ranges down to the file (best effort), or drops them when <paramref name="apply"/> is false.</summary>
    public async ValueTask ProcessDiscardsAsync(bool apply, CancellationToken cancellationToken)
    {
        if (_discards.Count == 0)
        {
            return;
        }

        (long Offset, long Length)[] pending = [.. _discards];
        _discards.Clear();
        if (!apply || _file.IsReadOnly)
        {
            return;
        }

        foreach ((long offset, long length) in pending)
        {
            try
            {
                await _file.DiscardAsync(offset, length, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // Discards are advisory.
            }
        }
    }

    // ------------------------------------------------------------ helpers

    /// <summary>Writes and makes durable (QEMU's bdrv_pwrite_sync).</summary>
    private async ValueTask WriteSyncAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _file.WriteAsync(offset, data, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        await BlockCache.FlushFile(cancellationToken).ConfigureAwait(false);
    }

    private static long DivRoundUp(long value, long divisor) => (value + divisor - 1) / divisor;
}
