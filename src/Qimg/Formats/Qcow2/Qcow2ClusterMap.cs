using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>Where a guest range lives: the answer of <see cref="Qcow2ClusterMap.GetHostOffsetAsync"/>.</summary>
/// <param name="Type">The type shared by the whole range.</param>
/// <param name="HostOffset">Host offset of the first byte for Normal, ZeroAllocated and UnallocatedAllocated ranges; 0 otherwise.</param>
/// <param name="Length">Bytes from the queried offset that share the type (and are contiguous on the host).</param>
/// <param name="Entry">The L2 entry of the first cluster (a compressed cluster's descriptor).</param>
internal readonly record struct Qcow2Mapping(Qcow2SubclusterType Type, long HostOffset, long Length, Qcow2L2Entry Entry);

/// <summary>
/// Guest-to-host mapping: the active L1 table (in memory, at most 32 MiB as in QEMU), L2 tables (through a
/// <see cref="Qcow2MetadataCache"/>), lookups, L1 growth, L2 allocation, and the cluster (and subcluster) allocation
/// of write requests with their copy-on-write regions. The mirror of QEMU's <c>qcow2-cluster.c</c>.
/// </summary>
/// <remarks>
/// Not thread-safe: callers hold <see cref="Lock"/>. Ordering rules kept here: a new L2 table is written (and flushed)
/// before the L1 entry pointing to it; a new L1 table before the header; new refcounts before the L2 entries using
/// them (through the cache dependency); L2 entries dropping references before the refcounts go down.
/// </remarks>
internal sealed class Qcow2ClusterMap
{
    /// <summary>QEMU's BDRV_REQUEST_MAX_BYTES: the largest request the block layer passes down.</summary>
    private const long MaxRequestBytes = 0x7FFFFE00;

    private readonly BlockNode _file;
    private readonly Qcow2Header _header;
    private readonly Qcow2Refcounts _refcounts;
    private readonly List<Qcow2Allocation> _inFlight = [];
    private ulong[] _l1;

    public Qcow2ClusterMap(BlockNode file, Qcow2Header header, Qcow2Refcounts refcounts, ulong[] l1, Qcow2MetadataCache l2Cache, SemaphoreSlim metadataLock, bool hasDataFile)
    {
        _file = file;
        _header = header;
        _refcounts = refcounts;
        _l1 = l1;
        L2Cache = l2Cache;
        Lock = metadataLock;
        HasDataFile = hasDataFile;
        ClusterBits = header.ClusterBits;
        ClusterSize = header.ClusterSize;
        HasSubclusters = header.HasSubclusters;
        L2EntrySize = header.L2EntrySize;
        L2Bits = ClusterBits - (HasSubclusters ? 4 : 3);
        L2Size = 1 << L2Bits;
        SubclustersPerCluster = HasSubclusters ? Qcow2Layout.SubclustersPerCluster : 1;
        SubclusterSize = ClusterSize / SubclustersPerCluster;
        SubclusterBits = System.Numerics.BitOperations.Log2((uint)SubclusterSize);
    }

    public Qcow2MetadataCache L2Cache { get; }

    /// <summary>The image's metadata lock (QEMU's s->lock); released only while waiting for an overlapping allocation.</summary>
    public SemaphoreSlim Lock { get; }

    public bool HasDataFile { get; }

    public int ClusterBits { get; }

    public int ClusterSize { get; }

    public bool HasSubclusters { get; }

    public int L2EntrySize { get; }

    public int L2Bits { get; }

    /// <summary>Entries per L2 table.</summary>
    public int L2Size { get; }

    public int SubclustersPerCluster { get; }

    public int SubclusterSize { get; }

    public int SubclusterBits { get; }

    public int L1Size => _l1.Length;

    /// <summary>Whether the image has a backing file (discards and zero writes depend on it).</summary>
    public Func<bool> HasBacking { get; set; } = static () => false;

    /// <summary>Sets the dirty bit before the first L2 update while lazy refcounts are in use.</summary>
    public Func<CancellationToken, ValueTask>? MarkDirtyAsync { get; set; }

    /// <summary>True when the image uses lazy refcounts (refcount updates may then lag behind L2 updates).</summary>
    public bool UseLazyRefcounts { get; set; }

    /// <summary>Data file for discards passed through to an external data file.</summary>
    public BlockNode? DataFile { get; set; }

    /// <summary>Reports a non-fatal corruption (QEMU prints it and continues).</summary>
    public Action<string>? NonFatalCorruption { get; set; }

    public ulong L1Entry(int index) => _l1[index];

    /// <summary>Changes L1 entry <paramref name="index"/> in memory (write it with <see cref="WriteL1EntryAsync"/>).</summary>
    public void SetL1Entry(int index, ulong value) => _l1[index] = value;

    public long L1TableOffset => (long)_header.L1TableOffset;

    public long OffsetInCluster(long offset) => offset & (ClusterSize - 1);

    public long StartOfCluster(long offset) => offset & ~(long)(ClusterSize - 1);

    public long SizeToClusters(long size) => (size + ClusterSize - 1) >> ClusterBits;

    public int L1Index(long guestOffset) => (int)(guestOffset >> (L2Bits + ClusterBits));

    public int L2Index(long guestOffset) => (int)((guestOffset >> ClusterBits) & (L2Size - 1));

    public int SubclusterIndex(long guestOffset) => (int)((guestOffset >> SubclusterBits) & (SubclustersPerCluster - 1));

    /// <summary>Loads the active L1 table (its size was validated against QEMU's 32 MiB limit).</summary>
    public static async ValueTask<ulong[]> LoadL1Async(BlockNode file, Qcow2Header header, CancellationToken cancellationToken)
    {
        var l1 = new ulong[header.L1Size];
        if (l1.Length == 0)
        {
            return l1;
        }

        await ReadTableAsync(file, (long)header.L1TableOffset, l1, cancellationToken).ConfigureAwait(false);
        return l1;
    }

    /// <summary>Makes another L1 table the active one in memory (a snapshot's, for read-only use).</summary>
    public void ReplaceL1(ulong[] table, long offset)
    {
        _l1 = table;
        _header.L1TableOffset = (ulong)offset;
        _header.L1Size = (uint)table.Length;
    }

    /// <summary>Reads a table of big-endian 64-bit entries in 1 MiB pieces (so no second full-size buffer is needed).</summary>
    internal static async ValueTask ReadTableAsync(BlockNode file, long offset, ulong[] table, CancellationToken cancellationToken)
    {
        byte[] raw = new byte[Math.Min((long)table.Length * 8, 1 << 20)];
        for (int first = 0; first < table.Length; first += raw.Length / 8)
        {
            int count = Math.Min(raw.Length / 8, table.Length - first);
            await file.ReadAsync(offset + (long)first * 8, raw.AsMemory(0, count * 8), cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < count; i++)
            {
                table[first + i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
            }
        }
    }

    // ------------------------------------------------------------ L2 entry access

    public Qcow2L2Entry GetEntry(Qcow2CachedTable table, int index)
    {
        int position = index * L2EntrySize;
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(table.Data.AsSpan(position));
        ulong bitmap = HasSubclusters ? BinaryPrimitives.ReadUInt64BigEndian(table.Data.AsSpan(position + 8)) : 0;
        return new Qcow2L2Entry(entry, bitmap);
    }

    private void SetEntry(Qcow2CachedTable table, int index, ulong entry) =>
        BinaryPrimitives.WriteUInt64BigEndian(table.Data.AsSpan(index * L2EntrySize), entry);

    private void SetBitmap(Qcow2CachedTable table, int index, ulong bitmap) =>
        BinaryPrimitives.WriteUInt64BigEndian(table.Data.AsSpan(index * L2EntrySize + 8), bitmap);

    public Qcow2ClusterType ClusterType(Qcow2L2Entry entry) => entry.GetClusterType(HasSubclusters, HasDataFile);

    public Qcow2SubclusterType SubclusterType(Qcow2L2Entry entry, int subcluster) => entry.GetSubclusterType(subcluster, HasSubclusters, HasDataFile);

    // ------------------------------------------------------------ lookup

    /// <summary>
    /// Maps the guest range at <paramref name="offset"/> (QEMU's qcow2_get_host_offset): the type of its first
    /// subcluster and how many bytes (at most <paramref name="bytes"/>, never past the L2 table) have the same type and
    /// are contiguous on the host. Validates every entry it looks at.
    /// </summary>
    /// <exception cref="InvalidDataException">An entry is inconsistent.</exception>
    public async ValueTask<Qcow2Mapping> GetHostOffsetAsync(long offset, long bytes, CancellationToken cancellationToken)
    {
        long offsetInCluster = OffsetInCluster(offset);
        long bytesNeeded = bytes + offsetInCluster;
        long bytesAvailable = (long)(L2Size - L2Index(offset)) << ClusterBits;
        bytesNeeded = Math.Min(bytesNeeded, bytesAvailable);

        int l1Index = L1Index(offset);
        long l2Offset = l1Index < _l1.Length ? (long)(_l1[l1Index] & Qcow2Layout.L1OffsetMask) : 0;
        if (l2Offset == 0)
        {
            return new Qcow2Mapping(Qcow2SubclusterType.UnallocatedPlain, 0, bytesNeeded - offsetInCluster, default);
        }

        if (OffsetInCluster(l2Offset) != 0)
        {
            Qcow2ThrowHelper.Corruption($"L2 table offset {Hex(l2Offset)} unaligned (L1 index: {Hex(l1Index)})");
        }

        Qcow2CachedTable table = await L2Cache.GetAsync(l2Offset, cancellationToken).ConfigureAwait(false);
        try
        {
            int l2Index = L2Index(offset);
            int scIndex = SubclusterIndex(offset);
            Qcow2L2Entry entry = GetEntry(table, l2Index);
            Qcow2SubclusterType type = SubclusterType(entry, scIndex);
            long hostOffset = 0;
            if (_header.Version < 3 && type is Qcow2SubclusterType.ZeroPlain or Qcow2SubclusterType.ZeroAllocated)
            {
                Qcow2ThrowHelper.Corruption($"Zero cluster entry found in pre-v3 image (L2 offset: {Hex(l2Offset)}, L2 index: {Hex(l2Index)})");
            }

            switch (type)
            {
                case Qcow2SubclusterType.Compressed:
                    if (HasDataFile)
                    {
                        Qcow2ThrowHelper.Corruption($"Compressed cluster entry found in image with external data file (L2 offset: {Hex(l2Offset)}, L2 index: {Hex(l2Index)})");
                    }

                    break;
                case Qcow2SubclusterType.ZeroAllocated:
                case Qcow2SubclusterType.Normal:
                case Qcow2SubclusterType.UnallocatedAllocated:
                    long hostCluster = entry.HostClusterOffset;
                    hostOffset = hostCluster + offsetInCluster;
                    if (OffsetInCluster(hostCluster) != 0)
                    {
                        Qcow2ThrowHelper.Corruption($"Cluster allocation offset {Hex(hostCluster)} unaligned (L2 offset: {Hex(l2Offset)}, L2 index: {Hex(l2Index)})");
                    }

                    if (HasDataFile && hostOffset != offset)
                    {
                        Qcow2ThrowHelper.Corruption($"External data file host cluster offset {Hex(hostCluster)} does not match guest cluster offset: {Hex(offset - offsetInCluster)}, L2 index: {Hex(l2Index)})");
                    }

                    break;
            }

            int clusters = (int)SizeToClusters(bytesNeeded);
            int count = CountContiguousSubclusters(clusters, scIndex, table, ref l2Index);
            if (count < 0)
            {
                Qcow2ThrowHelper.Corruption($"Invalid cluster entry found  (L2 offset: {Hex(l2Offset)}, L2 index: {Hex(l2Index)})");
            }

            bytesAvailable = (long)(count + scIndex) << SubclusterBits;
            return new Qcow2Mapping(type, hostOffset, Math.Min(bytesAvailable, bytesNeeded) - offsetInCluster, entry);
        }
        finally
        {
            L2Cache.Release(table);
        }
    }

    /// <summary>
    /// Counts subclusters of the same type from cluster <paramref name="l2Index"/>, subcluster <paramref name="scIndex"/>
    /// over at most <paramref name="clusters"/> clusters, with allocated ones contiguous on the host (QEMU's
    /// count_contiguous_subclusters). Compressed clusters count alone. Returns -1 with <paramref name="l2Index"/> at an
    /// invalid entry.
    /// </summary>
    private int CountContiguousSubclusters(int clusters, int scIndex, Qcow2CachedTable table, ref int l2Index)
    {
        int count = 0;
        bool checkOffset = false;
        long expectedOffset = 0;
        Qcow2SubclusterType expectedType = Qcow2SubclusterType.Normal;
        for (int i = 0; i < clusters; i++)
        {
            int firstSc = i == 0 ? scIndex : 0;
            Qcow2L2Entry entry = GetEntry(table, l2Index + i);
            int n = entry.CountSameType(firstSc, SubclustersPerCluster, HasSubclusters, HasDataFile, out Qcow2SubclusterType type);
            if (n < 0)
            {
                l2Index += i;
                return -1;
            }

            if (i == 0)
            {
                if (type == Qcow2SubclusterType.Compressed)
                {
                    return n;
                }

                expectedType = type;
                expectedOffset = entry.HostClusterOffset;
                checkOffset = type is Qcow2SubclusterType.Normal or Qcow2SubclusterType.ZeroAllocated or Qcow2SubclusterType.UnallocatedAllocated;
            }
            else if (type != expectedType)
            {
                break;
            }
            else if (checkOffset)
            {
                expectedOffset += ClusterSize;
                if (expectedOffset != entry.HostClusterOffset)
                {
                    break;
                }
            }

            count += n;
            if (firstSc + n < SubclustersPerCluster)
            {
                break;
            }
        }

        return count;
    }

    // ------------------------------------------------------------ L1 and L2 tables

    /// <summary>
    /// The L2 table for <paramref name="guestOffset"/>, pinned, with the entry index; grows the L1 table and allocates
    /// (or copies on write) the L2 table when needed (QEMU's get_cluster_table). Release the table when done.
    /// </summary>
    public async ValueTask<(Qcow2CachedTable Table, int Index)> GetClusterTableAsync(long guestOffset, CancellationToken cancellationToken)
    {
        int l1Index = L1Index(guestOffset);
        if (l1Index >= _l1.Length)
        {
            await GrowL1TableAsync(l1Index + 1L, false, cancellationToken).ConfigureAwait(false);
        }

        long l2Offset = (long)(_l1[l1Index] & Qcow2Layout.L1OffsetMask);
        if (OffsetInCluster(l2Offset) != 0)
        {
            Qcow2ThrowHelper.Corruption($"L2 table offset {Hex(l2Offset)} unaligned (L1 index: {Hex(l1Index)})");
        }

        if ((_l1[l1Index] & Qcow2Layout.OflagCopied) == 0)
        {
            await AllocateL2Async(l1Index, cancellationToken).ConfigureAwait(false);
            if (l2Offset != 0)
            {
                await _refcounts.FreeClustersAsync(l2Offset, ClusterSize, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
            }

            l2Offset = (long)(_l1[l1Index] & Qcow2Layout.L1OffsetMask);
        }

        Qcow2CachedTable table = await L2Cache.GetAsync(l2Offset, cancellationToken).ConfigureAwait(false);
        return (table, L2Index(guestOffset));
    }

    /// <summary>
    /// Grows the L1 table to at least <paramref name="minSize"/> entries (by half again unless <paramref name="exact"/>):
    /// a new table is written at a new place, then the header switches to it, then the old one is freed
    /// (QEMU's qcow2_grow_l1_table).
    /// </summary>
    public async ValueTask GrowL1TableAsync(long minSize, bool exact, CancellationToken cancellationToken)
    {
        if (minSize <= _l1.Length)
        {
            return;
        }

        if (minSize > int.MaxValue / Qcow2Layout.L1EntrySize)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }

        long newSize;
        if (exact)
        {
            newSize = minSize;
        }
        else
        {
            newSize = Math.Max(_l1.Length, 1);
            while (minSize > newSize)
            {
                newSize = (newSize * 3 + 1) / 2;
            }
        }

        if (newSize > Qcow2Layout.MaxL1TableBytes / Qcow2Layout.L1EntrySize)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }

        var newTable = new ulong[newSize];
        Array.Copy(_l1, newTable, _l1.Length);
        long newBytes = newSize * Qcow2Layout.L1EntrySize;
        long newOffset = await _refcounts.AllocateClustersAsync(newBytes, cancellationToken).ConfigureAwait(false);
        try
        {
            await _refcounts.BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
            byte[] raw = new byte[newBytes];
            for (int i = 0; i < _l1.Length; i++)
            {
                BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), newTable[i]);
            }

            await WriteSyncAsync(newOffset, raw, cancellationToken).ConfigureAwait(false);
            byte[] pointer = new byte[12];
            BinaryPrimitives.WriteUInt32BigEndian(pointer, (uint)newSize);
            BinaryPrimitives.WriteUInt64BigEndian(pointer.AsSpan(4), (ulong)newOffset);
            await WriteSyncAsync(Qcow2Layout.L1SizeOffset, pointer, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await _refcounts.FreeClustersAsync(newOffset, newBytes, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
            throw;
        }

        long oldOffset = (long)_header.L1TableOffset;
        long oldBytes = (long)_l1.Length * Qcow2Layout.L1EntrySize;
        _l1 = newTable;
        _header.L1TableOffset = (ulong)newOffset;
        _header.L1Size = (uint)newSize;
        await _refcounts.FreeClustersAsync(oldOffset, oldBytes, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Shrinks the L1 table to <paramref name="size"/> entries: the dropped entries are zeroed on disk first, then their
    /// L2 tables are freed (QEMU's qcow2_shrink_l1_table; the table keeps its place and size in the header).
    /// </summary>
    public async ValueTask ShrinkL1TableAsync(long size, CancellationToken cancellationToken)
    {
        if (size >= _l1.Length)
        {
            return;
        }

        try
        {
            await _file.WriteZeroesAsync(L1TableOffset + size * Qcow2Layout.L1EntrySize, (_l1.Length - size) * Qcow2Layout.L1EntrySize, ZeroFlags.None, cancellationToken).ConfigureAwait(false);
            await _refcounts.BlockCache.FlushFile(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Array.Clear(_l1, (int)size, _l1.Length - (int)size);
            throw;
        }

        for (int i = _l1.Length - 1; i >= size; i--)
        {
            long l2Offset = (long)(_l1[i] & Qcow2Layout.L1OffsetMask);
            if (l2Offset == 0)
            {
                continue;
            }

            await _refcounts.FreeClustersAsync(l2Offset, ClusterSize, Qcow2DiscardType.Always, cancellationToken).ConfigureAwait(false);
            _l1[i] = 0;
        }
    }

    /// <summary>Writes L1 entry <paramref name="index"/> (with its neighbours up to the file's alignment) and makes it durable.</summary>
    public async ValueTask WriteL1EntryAsync(int index, CancellationToken cancellationToken)
    {
        int bufferSize = Math.Max(Qcow2Layout.L1EntrySize, Math.Min(_file.Limits.RequestAlignment, ClusterSize));
        int entries = bufferSize / Qcow2Layout.L1EntrySize;
        int first = index / entries * entries;
        byte[] raw = new byte[bufferSize];
        for (int i = 0; i < Math.Min(entries, _l1.Length - first); i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), _l1[first + i]);
        }

        await WriteSyncAsync(L1TableOffset + (long)first * Qcow2Layout.L1EntrySize, raw, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Allocates a new L2 table for L1 entry <paramref name="l1Index"/>, copying the old table when there is one (copy on
    /// write of a shared table), writes it, then points the L1 entry at it (QEMU's l2_allocate).
    /// </summary>
    private async ValueTask AllocateL2Async(int l1Index, CancellationToken cancellationToken)
    {
        ulong oldEntry = _l1[l1Index];
        long l2Offset = await _refcounts.AllocateClustersAsync(ClusterSize, cancellationToken).ConfigureAwait(false);
        try
        {
            if (l2Offset == 0)
            {
                Qcow2ThrowHelper.Corruption("Preventing invalid allocation of L2 table at offset 0");
            }

            await _refcounts.BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
            Qcow2CachedTable table = await L2Cache.GetEmptyAsync(l2Offset, cancellationToken).ConfigureAwait(false);
            try
            {
                long oldOffset = (long)(oldEntry & Qcow2Layout.L1OffsetMask);
                if (oldOffset == 0)
                {
                    Array.Clear(table.Data);
                }
                else
                {
                    Qcow2CachedTable old = await L2Cache.GetAsync(oldOffset, cancellationToken).ConfigureAwait(false);
                    old.Data.CopyTo(table.Data, 0);
                    L2Cache.Release(old);
                }

                Qcow2MetadataCache.MarkDirty(table);
            }
            finally
            {
                L2Cache.Release(table);
            }

            // The new table is on disk before the L1 entry points to it.
            await L2Cache.FlushAsync(cancellationToken).ConfigureAwait(false);
            _l1[l1Index] = (ulong)l2Offset | Qcow2Layout.OflagCopied;
            await WriteL1EntryAsync(l1Index, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _l1[l1Index] = oldEntry;
            if (l2Offset > 0)
            {
                await _refcounts.FreeClustersAsync(l2Offset, ClusterSize, Qcow2DiscardType.Always, cancellationToken).ConfigureAwait(false);
            }

            throw;
        }
    }

    // ------------------------------------------------------------ write allocation

    /// <summary>
    /// For a write of <paramref name="bytes"/> at <paramref name="offset"/>, finds or allocates host space
    /// (QEMU's qcow2_alloc_host_offset): clusters that can be overwritten in place are used as they are, others are
    /// newly allocated, contiguously when possible. Waits (releasing <see cref="Lock"/>) for overlapping in-flight
    /// allocations.
    /// </summary>
    /// <returns>The host offset of <paramref name="offset"/>, how many bytes from there are contiguous on the host, and
    /// the allocations to link (or abort) once the data is written; they are registered as in flight.</returns>
    public async ValueTask<(long HostOffset, long Bytes, List<Qcow2Allocation> Allocations)> AllocateHostOffsetAsync(long offset, long bytes, CancellationToken cancellationToken)
    {
    again:
        long start = offset;
        long remaining = bytes;
        long clusterOffset = -1;
        long hostOffset = -1;
        long current = 0;
        var allocations = new List<Qcow2Allocation>();
        try
        {
            while (true)
            {
                if (hostOffset == -1 && clusterOffset != -1)
                {
                    hostOffset = clusterOffset;
                }

                start += current;
                remaining -= current;
                if (clusterOffset != -1)
                {
                    clusterOffset += current;
                }

                if (remaining == 0)
                {
                    break;
                }

                current = remaining;
                (bool waited, current) = await HandleDependenciesAsync(start, current, allocations.Count > 0, cancellationToken).ConfigureAwait(false);
                if (waited)
                {
                    goto again;
                }

                if (current == 0)
                {
                    break;
                }

                (int copied, clusterOffset, current) = await HandleCopiedAsync(start, clusterOffset, current, allocations, cancellationToken).ConfigureAwait(false);
                if (copied > 0)
                {
                    continue;
                }

                if (current == 0)
                {
                    break;
                }

                (int allocated, clusterOffset, current) = await HandleAllocAsync(start, clusterOffset, current, allocations, cancellationToken).ConfigureAwait(false);
                if (allocated > 0)
                {
                    continue;
                }

                break;
            }
        }
        catch
        {
            await AbortAllocationsAsync(allocations, cancellationToken).ConfigureAwait(false);
            throw;
        }

        return (hostOffset, bytes - remaining, allocations);
    }

    /// <summary>
    /// Shortens the request before the first overlapping in-flight allocation, or waits for it when it overlaps the
    /// first cluster (QEMU's handle_dependencies). Returns waited = true when the caller must start over.
    /// </summary>
    private async ValueTask<(bool Waited, long Bytes)> HandleDependenciesAsync(long guestOffset, long bytes, bool haveAllocations, CancellationToken cancellationToken)
    {
        foreach (Qcow2Allocation old in _inFlight)
        {
            long start = guestOffset;
            long end = start + bytes;
            long oldStart = StartOfCluster(old.CowStartGuest);
            long oldEnd = StartOfCluster(old.CowEndGuest + ClusterSize - 1);
            if (end <= oldStart || start >= oldEnd)
            {
                continue;
            }

            if (old.KeepOldClusters && (end <= old.CowStartGuest || start >= old.CowEndGuest))
            {
                // The clusters are shared but already allocated and the COW areas do not meet: no conflict.
                continue;
            }

            bytes = start < oldStart ? oldStart - start : 0;
            if (bytes == 0 && haveAllocations)
            {
                return (false, 0);
            }

            if (bytes == 0)
            {
                Lock.Release();
                try
                {
                    await old.Done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    await Lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                }

                return (true, 0);
            }
        }

        return (false, bytes);
    }

    /// <summary>Whether writing to the cluster needs a new allocation (unallocated, compressed, zero, or shared).</summary>
    private bool NeedsNewAllocation(Qcow2L2Entry entry)
    {
        Qcow2ClusterType type = ClusterType(entry);
        return type switch
        {
            Qcow2ClusterType.Normal or Qcow2ClusterType.ZeroAllocated => !entry.IsCopied,
            _ => true,
        };
    }

    private int CountSingleWriteClusters(int clusters, Qcow2CachedTable table, int l2Index, bool newAllocation)
    {
        long expected = GetEntry(table, l2Index).HostClusterOffset;
        int i = 0;
        for (; i < clusters; i++)
        {
            Qcow2L2Entry entry = GetEntry(table, l2Index + i);
            if (NeedsNewAllocation(entry) != newAllocation)
            {
                break;
            }

            if (!newAllocation)
            {
                if (expected != entry.HostClusterOffset)
                {
                    break;
                }

                expected += ClusterSize;
            }
        }

        return i;
    }

    private int ClustersToExamine(long guestOffset, long bytes)
    {
        long clusters = SizeToClusters(OffsetInCluster(guestOffset) + bytes);
        clusters = Math.Min(clusters, L2Size - L2Index(guestOffset));
        return (int)Math.Min(clusters, MaxRequestBytes >> ClusterBits);
    }

    /// <summary>
    /// Counts the clusters at <paramref name="guestOffset"/> that can be written in place (QEMU's handle_copied),
    /// optionally only those contiguous with <paramref name="hostOffset"/>.
    /// </summary>
    private async ValueTask<(int Result, long HostOffset, long Bytes)> HandleCopiedAsync(long guestOffset, long hostOffset, long bytes, List<Qcow2Allocation> allocations, CancellationToken cancellationToken)
    {
        int clusters = ClustersToExamine(guestOffset, bytes);
        (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(guestOffset, cancellationToken).ConfigureAwait(false);
        try
        {
            Qcow2L2Entry entry = GetEntry(table, l2Index);
            long clusterOffset = entry.HostClusterOffset;
            if (NeedsNewAllocation(entry))
            {
                return (0, hostOffset, bytes);
            }

            if (OffsetInCluster(clusterOffset) != 0)
            {
                string what = (entry.Entry & Qcow2Layout.OflagZero) != 0 ? "Preallocated zero" : "Data";
                Qcow2ThrowHelper.Corruption($"{what} cluster offset {Hex(clusterOffset)} unaligned (guest offset: {Hex(guestOffset)})");
            }

            if (hostOffset != -1 && clusterOffset != StartOfCluster(hostOffset))
            {
                return (0, hostOffset, 0);
            }

            int keep = CountSingleWriteClusters(clusters, table, l2Index, false);
            bytes = Math.Min(bytes, ((long)keep << ClusterBits) - OffsetInCluster(guestOffset));
            CalculateAllocation(clusterOffset, guestOffset, bytes, table, l2Index, allocations, keepOld: true);
            return (1, clusterOffset + OffsetInCluster(guestOffset), bytes);
        }
        finally
        {
            L2Cache.Release(table);
        }
    }

    /// <summary>Allocates new clusters for the area at <paramref name="guestOffset"/> (QEMU's handle_alloc).</summary>
    private async ValueTask<(int Result, long HostOffset, long Bytes)> HandleAllocAsync(long guestOffset, long hostOffset, long bytes, List<Qcow2Allocation> allocations, CancellationToken cancellationToken)
    {
        int clusters = ClustersToExamine(guestOffset, bytes);
        (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(guestOffset, cancellationToken).ConfigureAwait(false);
        try
        {
            long count = CountSingleWriteClusters(clusters, table, l2Index, true);
            long allocOffset = hostOffset == -1 ? -1 : StartOfCluster(hostOffset);
            if (HasDataFile)
            {
                allocOffset = StartOfCluster(guestOffset);
            }
            else if (allocOffset == -1)
            {
                allocOffset = await _refcounts.AllocateClustersAsync(count << ClusterBits, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                count = await _refcounts.AllocateClustersAtAsync(allocOffset, count, cancellationToken).ConfigureAwait(false);
            }

            if (count == 0)
            {
                return (0, hostOffset, 0);
            }

            long requested = bytes + OffsetInCluster(guestOffset);
            long available = count << ClusterBits;
            long usable = Math.Min(requested, available);
            bytes = Math.Min(bytes, usable - OffsetInCluster(guestOffset));
            try
            {
                CalculateAllocation(allocOffset, guestOffset, bytes, table, l2Index, allocations, keepOld: false);
            }
            catch when (!HasDataFile)
            {
                await _refcounts.FreeClustersAsync(allocOffset, count << ClusterBits, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false);
                throw;
            }

            return (1, allocOffset + OffsetInCluster(guestOffset), bytes);
        }
        finally
        {
            L2Cache.Release(table);
        }
    }

    /// <summary>
    /// Works out the COW regions of a write of <paramref name="bytes"/> at <paramref name="guestOffset"/> into the
    /// clusters starting at <paramref name="hostClusterOffset"/>, and registers the allocation as in flight (QEMU's
    /// calculate_l2_meta). Nothing is registered when the write needs neither COW nor an L2 update.
    /// </summary>
    private void CalculateAllocation(long hostClusterOffset, long guestOffset, long bytes, Qcow2CachedTable table, int l2Index, List<Qcow2Allocation> allocations, bool keepOld)
    {
        int cowStartTo = (int)OffsetInCluster(guestOffset);
        int cowEndFrom = cowStartTo + (int)bytes;
        int clusters = (int)SizeToClusters(cowEndFrom);
        bool skipCow = keepOld;
        Qcow2SubclusterType type;
        for (int i = 0; i < clusters; i++)
        {
            Qcow2L2Entry entry = GetEntry(table, l2Index + i);
            if (skipCow)
            {
                int writeFrom = Math.Max(cowStartTo, i << ClusterBits);
                int writeTo = Math.Min(cowEndFrom, (i + 1) << ClusterBits);
                int firstSc = SubclusterIndex(writeFrom);
                int lastSc = SubclusterIndex(writeTo - 1);
                int n = entry.CountSameType(firstSc, SubclustersPerCluster, HasSubclusters, HasDataFile, out type);
                if (type != Qcow2SubclusterType.Normal || firstSc + n <= lastSc)
                {
                    skipCow = false;
                }
            }
            else
            {
                type = SubclusterType(entry, 0);
            }

            if (type == Qcow2SubclusterType.Invalid)
            {
                int l1Index = L1Index(guestOffset);
                long l2Offset = (long)(_l1[l1Index] & Qcow2Layout.L1OffsetMask);
                Qcow2ThrowHelper.Corruption($"Invalid cluster entry found (L2 offset: {Hex(l2Offset)}, L2 index: {Hex(l2Index + i)})");
            }
        }

        if (skipCow)
        {
            return;
        }

        Qcow2L2Entry first = GetEntry(table, l2Index);
        int scIndex = SubclusterIndex(guestOffset);
        type = SubclusterType(first, scIndex);
        int cowStartFrom;
        if (!keepOld)
        {
            cowStartFrom = type switch
            {
                Qcow2SubclusterType.Compressed => 0,
                Qcow2SubclusterType.Normal or Qcow2SubclusterType.ZeroAllocated or Qcow2SubclusterType.UnallocatedAllocated =>
                    HasSubclusters
                        ? Math.Min(scIndex, System.Numerics.BitOperations.TrailingZeroCount((uint)first.Bitmap)) << SubclusterBits
                        : 0,
                _ => scIndex << SubclusterBits,
            };
        }
        else
        {
            cowStartFrom = type == Qcow2SubclusterType.Normal ? cowStartTo : scIndex << SubclusterBits;
        }

        Qcow2L2Entry lastEntry = GetEntry(table, l2Index + clusters - 1);
        scIndex = SubclusterIndex(guestOffset + bytes - 1);
        type = SubclusterType(lastEntry, scIndex);
        int cowEndTo;
        if (!keepOld)
        {
            switch (type)
            {
                case Qcow2SubclusterType.Compressed:
                    cowEndTo = RoundUp(cowEndFrom, ClusterSize);
                    break;
                case Qcow2SubclusterType.Normal:
                case Qcow2SubclusterType.ZeroAllocated:
                case Qcow2SubclusterType.UnallocatedAllocated:
                    cowEndTo = RoundUp(cowEndFrom, ClusterSize);
                    if (HasSubclusters)
                    {
                        // Skip trailing zero and unallocated subclusters.
                        uint allocated = (uint)lastEntry.Bitmap;
                        int trailing = System.Numerics.BitOperations.LeadingZeroCount(allocated);
                        cowEndTo -= Math.Min(SubclustersPerCluster - scIndex - 1, trailing) << SubclusterBits;
                    }

                    break;
                default:
                    cowEndTo = RoundUp(cowEndFrom, SubclusterSize);
                    break;
            }
        }
        else
        {
            cowEndTo = type == Qcow2SubclusterType.Normal ? cowEndFrom : RoundUp(cowEndFrom, SubclusterSize);
        }

        var allocation = new Qcow2Allocation
        {
            GuestOffset = StartOfCluster(guestOffset),
            HostOffset = hostClusterOffset,
            ClusterCount = clusters,
            KeepOldClusters = keepOld,
            CowStart = (cowStartFrom, cowStartTo - cowStartFrom),
            CowEnd = (cowEndFrom, cowEndTo - cowEndFrom),
        };
        allocations.Add(allocation);
        _inFlight.Add(allocation);
    }

    private static int RoundUp(int value, int align) => (value + align - 1) / align * align;

    /// <summary>
    /// Points the L2 entries of a completed allocation at its host clusters (QEMU's qcow2_alloc_cluster_link_l2, after
    /// the COW): the L2 table is marked dirty behind the refcount cache, so the new refcounts reach the disk first. Old
    /// clusters that were replaced are freed afterwards. The allocation leaves the in-flight list.
    /// </summary>
    public async ValueTask LinkAllocationAsync(Qcow2Allocation allocation, CancellationToken cancellationToken)
    {
        try
        {
            if (UseLazyRefcounts && MarkDirtyAsync is not null)
            {
                await MarkDirtyAsync(cancellationToken).ConfigureAwait(false);
            }

            if (_refcounts.NeedAccurateRefcounts())
            {
                await L2Cache.SetDependencyAsync(_refcounts.BlockCache, cancellationToken).ConfigureAwait(false);
            }

            var oldEntries = new List<ulong>();
            (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(allocation.GuestOffset, cancellationToken).ConfigureAwait(false);
            try
            {
                Qcow2MetadataCache.MarkDirty(table);
                for (int i = 0; i < allocation.ClusterCount; i++)
                {
                    long hostOffset = allocation.HostOffset + ((long)i << ClusterBits);
                    Qcow2L2Entry entry = GetEntry(table, l2Index + i);

                    // Two writes into the same unallocated cluster each allocate; the later one to finish replaces the
                    // earlier one's cluster, which is freed below.
                    if (entry.Entry != 0)
                    {
                        oldEntries.Add(entry.Entry);
                    }

                    SetEntry(table, l2Index + i, (ulong)hostOffset | Qcow2Layout.OflagCopied);
                    if (HasSubclusters && !allocation.Prealloc)
                    {
                        int writtenFrom = Math.Max(allocation.CowStart.Offset, i << ClusterBits);
                        int writtenTo = Math.Min(allocation.CowEnd.Offset + allocation.CowEnd.Bytes, (i + 1) << ClusterBits);
                        int firstSc = SubclusterIndex(writtenFrom);
                        int lastSc = SubclusterIndex(writtenTo - 1);
                        ulong bitmap = entry.Bitmap | Qcow2Layout.SubclusterAllocRange(firstSc, lastSc + 1);
                        bitmap &= ~Qcow2Layout.SubclusterZeroRange(firstSc, lastSc + 1);
                        SetBitmap(table, l2Index + i, bitmap);
                    }
                }
            }
            finally
            {
                L2Cache.Release(table);
            }

            if (!allocation.KeepOldClusters)
            {
                foreach (ulong old in oldEntries)
                {
                    await FreeAnyClusterAsync(new Qcow2L2Entry(old, 0), Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            Complete(allocation);
        }
    }

    /// <summary>Frees the clusters of allocations that will not be linked, and releases waiters (QEMU's qcow2_alloc_cluster_abort).</summary>
    public async ValueTask AbortAllocationsAsync(List<Qcow2Allocation> allocations, CancellationToken cancellationToken)
    {
        foreach (Qcow2Allocation allocation in allocations)
        {
            try
            {
                if (!HasDataFile && !allocation.KeepOldClusters)
                {
                    await _refcounts.FreeClustersAsync(allocation.HostOffset, (long)allocation.ClusterCount << ClusterBits, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                Complete(allocation);
            }
        }
    }

    private void Complete(Qcow2Allocation allocation)
    {
        _inFlight.Remove(allocation);
        allocation.Done.TrySetResult();
    }

    /// <summary>Frees whatever host space an L2 entry references (QEMU's qcow2_free_any_cluster).</summary>
    public async ValueTask FreeAnyClusterAsync(Qcow2L2Entry entry, Qcow2DiscardType discardType, CancellationToken cancellationToken)
    {
        Qcow2ClusterType type = ClusterType(entry);
        if (HasDataFile)
        {
            if (DataFile is not null && _refcounts.DiscardPassthrough(discardType) && type is Qcow2ClusterType.Normal or Qcow2ClusterType.ZeroAllocated)
            {
                try
                {
                    await DataFile.DiscardAsync(entry.HostClusterOffset, ClusterSize, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException)
                {
                }
            }

            return;
        }

        switch (type)
        {
            case Qcow2ClusterType.Compressed:
                await _refcounts.FreeL2ReferencedClustersAsync(entry.CompressedOffset(ClusterBits), entry.CompressedLength(ClusterBits), discardType, cancellationToken).ConfigureAwait(false);
                break;
            case Qcow2ClusterType.Normal:
            case Qcow2ClusterType.ZeroAllocated:
                if (OffsetInCluster(entry.HostClusterOffset) != 0)
                {
                    NonFatalCorruption?.Invoke($"Cannot free unaligned cluster {Hex(entry.HostClusterOffset)}");
                }
                else
                {
                    await _refcounts.FreeL2ReferencedClustersAsync(entry.HostClusterOffset, ClusterSize, discardType, cancellationToken).ConfigureAwait(false);
                }

                break;
        }
    }

    /// <summary>
    /// Allocates host bytes for a compressed cluster at <paramref name="guestOffset"/> and points its L2 entry at them
    /// (QEMU's qcow2_alloc_compressed_cluster_offset). The guest cluster must not be allocated: compression cannot
    /// overwrite anything.
    /// </summary>
    /// <returns>The host offset to write the compressed bytes to.</returns>
    /// <exception cref="IOException">The cluster is already allocated (EIO).</exception>
    public async ValueTask<long> AllocateCompressedAsync(long guestOffset, int compressedLength, CancellationToken cancellationToken)
    {
        (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(guestOffset, cancellationToken).ConfigureAwait(false);
        try
        {
            Qcow2L2Entry old = GetEntry(table, l2Index);
            if ((old.Entry & Qcow2Layout.L2OffsetMask) != 0)
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
            }

            long hostOffset = await _refcounts.AllocateBytesAsync(compressedLength, cancellationToken).ConfigureAwait(false);
            Qcow2MetadataCache.MarkDirty(table);

            // Compressed clusters never have the copied flag.
            SetEntry(table, l2Index, Qcow2L2Entry.MakeCompressed(hostOffset, compressedLength, ClusterBits));
            if (HasSubclusters)
            {
                SetBitmap(table, l2Index, 0);
            }

            return hostOffset;
        }
        finally
        {
            L2Cache.Release(table);
        }
    }

    // ------------------------------------------------------------ discard and zeroing

    /// <summary>
    /// Deallocates whole clusters (QEMU's qcow2_cluster_discard). With <paramref name="fullDiscard"/> they fall
    /// through to the backing file afterwards; otherwise they read as zero (version 3) when there is a backing file or
    /// they were allocated.
    /// </summary>
    public async ValueTask DiscardClustersAsync(long offset, long bytes, Qcow2DiscardType discardType, bool fullDiscard, CancellationToken cancellationToken)
    {
        long clusters = SizeToClusters(bytes);
        _refcounts.CacheDiscards = true;
        bool ok = false;
        try
        {
            while (clusters > 0)
            {
                (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(offset, cancellationToken).ConfigureAwait(false);
                int count = (int)Math.Min(clusters, L2Size - l2Index);
                var freed = new List<ulong>();
                try
                {
                    for (int i = 0; i < count; i++)
                    {
                        Qcow2L2Entry old = GetEntry(table, l2Index + i);
                        ulong newEntry = old.Entry;
                        ulong newBitmap = old.Bitmap;
                        Qcow2ClusterType type = ClusterType(old);
                        if (fullDiscard)
                        {
                            newEntry = 0;
                            newBitmap = 0;
                        }
                        else if (HasBacking() || type is Qcow2ClusterType.Compressed or Qcow2ClusterType.Normal or Qcow2ClusterType.ZeroAllocated)
                        {
                            if (HasSubclusters)
                            {
                                newEntry = 0;
                                newBitmap = Qcow2Layout.BitmapAllZeroes;
                            }
                            else
                            {
                                newEntry = _header.Version >= 3 ? Qcow2Layout.OflagZero : 0;
                            }
                        }

                        if (old.Entry == newEntry && old.Bitmap == newBitmap)
                        {
                            continue;
                        }

                        // First the L2 entry, then (behind it, through the cache dependency) the refcount.
                        Qcow2MetadataCache.MarkDirty(table);
                        SetEntry(table, l2Index + i, newEntry);
                        if (HasSubclusters)
                        {
                            SetBitmap(table, l2Index + i, newBitmap);
                        }

                        freed.Add(old.Entry);
                    }
                }
                finally
                {
                    L2Cache.Release(table);
                }

                foreach (ulong old in freed)
                {
                    await FreeAnyClusterAsync(new Qcow2L2Entry(old, 0), discardType, cancellationToken).ConfigureAwait(false);
                }

                clusters -= count;
                offset += (long)count << ClusterBits;
            }

            ok = true;
        }
        finally
        {
            _refcounts.CacheDiscards = false;
            await _refcounts.ProcessDiscardsAsync(ok, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Makes subcluster-aligned guest ranges read as zero through metadata only (QEMU's qcow2_subcluster_zeroize). The
    /// end may be unaligned only at the end of the image. Version 2 images without a backing file are discarded instead.
    /// </summary>
    /// <returns>False when the image cannot do it (version 2 with a backing file, or a partial compressed cluster).</returns>
    public async ValueTask<bool> ZeroizeAsync(long offset, long bytes, bool mayUnmap, long imageSize, CancellationToken cancellationToken)
    {
        long endOffset = offset + bytes;
        if (_header.Version < 3)
        {
            if (!HasBacking())
            {
                await DiscardClustersAsync(offset, bytes, Qcow2DiscardType.Request, false, cancellationToken).ConfigureAwait(false);
                return true;
            }

            return false;
        }

        long head = Math.Min(endOffset, RoundUpLong(offset, ClusterSize)) - offset;
        offset += head;
        long tail = endOffset >= imageSize ? 0 : endOffset - Math.Max(offset, StartOfCluster(endOffset));
        endOffset -= tail;

        _refcounts.CacheDiscards = true;
        bool ok = false;
        try
        {
            if (head != 0 && !await ZeroSubclustersAsync(offset - head, (int)((head + SubclusterSize - 1) >> SubclusterBits), cancellationToken).ConfigureAwait(false))
            {
                return false;
            }

            long clusters = SizeToClusters(endOffset - offset);
            while (clusters > 0)
            {
                (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(offset, cancellationToken).ConfigureAwait(false);
                int count = (int)Math.Min(clusters, L2Size - l2Index);
                var freed = new List<ulong>();
                try
                {
                    for (int i = 0; i < count; i++)
                    {
                        Qcow2L2Entry old = GetEntry(table, l2Index + i);
                        Qcow2ClusterType type = ClusterType(old);
                        bool isAllocated = type is Qcow2ClusterType.Compressed or Qcow2ClusterType.Normal or Qcow2ClusterType.ZeroAllocated;
                        bool unmap = type == Qcow2ClusterType.Compressed || (mayUnmap && isAllocated);
                        ulong newEntry = unmap ? 0 : old.Entry;
                        ulong newBitmap = old.Bitmap;
                        if (HasSubclusters)
                        {
                            newBitmap = Qcow2Layout.BitmapAllZeroes;
                        }
                        else
                        {
                            newEntry |= Qcow2Layout.OflagZero;
                        }

                        if (old.Entry == newEntry && old.Bitmap == newBitmap)
                        {
                            continue;
                        }

                        Qcow2MetadataCache.MarkDirty(table);
                        SetEntry(table, l2Index + i, newEntry);
                        if (HasSubclusters)
                        {
                            SetBitmap(table, l2Index + i, newBitmap);
                        }

                        if (unmap)
                        {
                            freed.Add(old.Entry);
                        }
                    }
                }
                finally
                {
                    L2Cache.Release(table);
                }

                foreach (ulong old in freed)
                {
                    await FreeAnyClusterAsync(new Qcow2L2Entry(old, 0), Qcow2DiscardType.Request, cancellationToken).ConfigureAwait(false);
                }

                clusters -= count;
                offset += (long)count << ClusterBits;
            }

            if (tail != 0 && !await ZeroSubclustersAsync(endOffset, (int)((tail + SubclusterSize - 1) >> SubclusterBits), cancellationToken).ConfigureAwait(false))
            {
                return false;
            }

            ok = true;
            return true;
        }
        finally
        {
            _refcounts.CacheDiscards = false;
            await _refcounts.ProcessDiscardsAsync(ok, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sets the zero bits of some subclusters of one cluster (QEMU's zero_l2_subclusters); false for compressed clusters.</summary>
    private async ValueTask<bool> ZeroSubclustersAsync(long offset, int count, CancellationToken cancellationToken)
    {
        int sc = SubclusterIndex(offset);
        (Qcow2CachedTable table, int l2Index) = await GetClusterTableAsync(offset, cancellationToken).ConfigureAwait(false);
        try
        {
            Qcow2L2Entry entry = GetEntry(table, l2Index);
            if (ClusterType(entry) == Qcow2ClusterType.Compressed)
            {
                return false;
            }

            ulong bitmap = entry.Bitmap | Qcow2Layout.SubclusterZeroRange(sc, sc + count);
            bitmap &= ~Qcow2Layout.SubclusterAllocRange(sc, sc + count);
            if (bitmap != entry.Bitmap)
            {
                SetBitmap(table, l2Index, bitmap);
                Qcow2MetadataCache.MarkDirty(table);
            }

            return true;
        }
        finally
        {
            L2Cache.Release(table);
        }
    }

    private static long RoundUpLong(long value, long align) => (value + align - 1) / align * align;

    private async ValueTask WriteSyncAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _file.WriteAsync(offset, data, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        await _refcounts.BlockCache.FlushFile(cancellationToken).ConfigureAwait(false);
    }

    private static string Hex(long value) => Qcow2ThrowHelper.Hex(value);
}
