using System.Buffers;
using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// The consistency check and repair of a qcow2 image (QEMU's <c>qcow2_co_check</c>: <c>qcow2_check_refcounts</c> and the
/// snapshot table checks). It walks every structure that references host clusters — header, active and snapshot L1/L2
/// tables, snapshot table, refcount table and blocks, encryption header, bitmap directory and tables — counting the
/// references in a <see cref="Qcow2RefcountArray"/>, then compares the counts with the stored refcounts, checks the
/// copied flags, and repairs what the mode allows. Every finding is reported with QEMU's wording, in QEMU's order.
/// </summary>
/// <remarks>
/// <para>
/// Runs under the image's metadata lock and works on the image's own engine: refcount updates, allocations, the caches
/// and the in-memory tables are those of <see cref="Qcow2Refcounts"/> and <see cref="Qcow2ClusterMap"/>, so the open image
/// stays consistent with what the check changed.
/// </para>
/// <para>
/// Metadata is read in large batches (<see cref="Qcow2TableReader"/>): all L2 tables of an L1 table and all refcount
/// blocks are fetched with a few coalesced reads rather than one read per table. Memory is bounded by the image file:
/// the counts hold one entry per host cluster of the file (plus what a repair appends), a batch holds at most
/// <see cref="Qcow2TableReader.MaxBatchBytes"/>, and the copies of stored refcount blocks the copied-flag check needs are
/// kept only for blocks that differ from the counts. The work spent on L1/L2 tables is bounded too
/// (<see cref="WorkBudget"/>), so that tables referencing each other over and over end the check with an error instead
/// of running for hours.
/// </para>
/// <para>
/// Repairs are crash-safe: a version 3 image carries the dirty bit while they are made (an interrupted repair is
/// finished by the repair on the next writable open), refcount fixes only move refcounts towards the counted values, and
/// a rebuilt refcount structure is written to free clusters and made durable before the header switches to it.
/// </para>
/// </remarks>
internal sealed partial class Qcow2Check
{
    /// <summary>QEMU's BDRV_MAX_LENGTH: requests reaching past it fail with EIO instead of reading zeroes.</summary>
    private const long MaxRequestEnd = long.MaxValue & ~((1L << 30) - 1);

    private const ulong L1ReservedMask = Qcow2Layout.L1ReservedMask;
    private const ulong BitmapTableReservedMask = 0xff000000000001feUL;
    private const ulong BitmapTableOffsetMask = 0x00fffffffffffe00UL;
    private const ulong BitmapTableFlagAllOnes = 1;

    private readonly Qcow2Image _image;
    private readonly Qcow2Header _header;
    private readonly BlockNode _file;
    private readonly Qcow2Refcounts _refcounts;
    private readonly Qcow2ClusterMap _map;
    private readonly Action<CheckMessage>? _report;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _l2EntrySize;
    private readonly int _l2Size;
    private readonly bool _hasSubclusters;
    private readonly bool _hasDataFile;
    private readonly ulong _compressedOffsetMask;

    /// <summary>QEMU's "rebuild": the refcount structure itself is broken and must be rebuilt from the counts.</summary>
    private bool _rebuild;

    /// <summary>L1 and L2 entries the check may still look at (see <see cref="WorkBudget"/>).</summary>
    private long _workLeft;

    /// <summary>
    /// The stored refcount blocks that differ from the counts, by block index, as the last comparison found them (with
    /// its repairs applied); for every other block below the compared size, the stored refcounts equal the counts.
    /// </summary>
    private byte[]?[] _storedBlocks = [];

    /// <summary>Refcount blocks whose stored refcounts could not be read, by block index.</summary>
    private Exception?[] _unreadableBlocks = [];

    /// <summary>Number of clusters the last comparison covered.</summary>
    private long _comparedSize;

    /// <summary>Offset and on-disk size of the snapshot table the check read (QEMU's snapshots_offset and snapshots_size).</summary>
    private long _snapshotsOffset;
    private long _snapshotsSize;

    public Qcow2Check(Qcow2Image image, Action<CheckMessage>? report)
    {
        _image = image;
        _header = image.CheckHeader;
        _file = image.File;
        _refcounts = image.CheckRefcounts;
        _map = image.CheckMap;
        _report = report;
        _clusterBits = _header.ClusterBits;
        _clusterSize = _header.ClusterSize;
        _l2EntrySize = _header.L2EntrySize;
        _l2Size = _clusterSize / _l2EntrySize;
        _hasSubclusters = _header.HasSubclusters;
        _hasDataFile = _header.HasExternalDataFile;
        _compressedOffsetMask = Qcow2L2Entry.CompressedOffsetMask(_clusterBits);
    }

    private List<Qcow2Snapshot> Snapshots => _image.CheckSnapshots;

    // ------------------------------------------------------------ entry point

    /// <summary>
    /// The whole check (QEMU's qcow2_co_check_locked): the snapshot table, the refcounts, the repair of the snapshot
    /// table, and, when repairing left nothing broken, the dirty and corrupt bits cleared.
    /// </summary>
    /// <exception cref="IOException">The check could not complete (HResult: the errno, message: its strerror text).</exception>
    public async ValueTask<CheckResult> RunAsync(RepairMode fix, CancellationToken cancellationToken)
    {
        var result = new CheckResult();
        var snapshotResult = new CheckResult();
        try
        {
            // Whatever the image has cached must be on disk: the check reads the metadata from the file.
            await _image.WriteCachesForCheckAsync(cancellationToken).ConfigureAwait(false);
            await CheckReadSnapshotTableAsync(snapshotResult, fix, cancellationToken).ConfigureAwait(false);

            var refcountResult = new CheckResult();
            try
            {
                await CheckRefcountsAsync(refcountResult, fix, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                result.Add(refcountResult, withAllocationInfo: true);
            }

            await CheckFixSnapshotTableAsync(snapshotResult, fix, cancellationToken).ConfigureAwait(false);
            result.Add(snapshotResult, withAllocationInfo: false);

            if (fix != RepairMode.None && result.CheckErrors == 0 && result.Corruptions == 0)
            {
                await _image.MarkCleanAndConsistentAsync(cancellationToken).ConfigureAwait(false);
            }

            return result;
        }
        finally
        {
            await _image.EndRepairAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------ refcounts

    /// <summary>QEMU's qcow2_check_refcounts: count, compare, repair or rebuild, check the copied flags.</summary>
    private async ValueTask CheckRefcountsAsync(CheckResult res, RepairMode fix, CancellationToken cancellationToken)
    {
        long fileClusters = SizeToClusters(_file.Length);
        if (fileClusters > int.MaxValue)
        {
            res.CheckErrors++;
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }

        res.TotalClusters = SizeToClusters(_image.Length);
        var counts = new Qcow2RefcountArray(_clusterSize, _header.RefcountOrder, fileClusters);
        _rebuild = false;
        _workLeft = WorkBudget(fileClusters);
        await CalculateRefcountsAsync(res, fix, counts, cancellationToken).ConfigureAwait(false);

        // When something is to be fixed without a rebuild, the comparison runs again with repairs; its first result is
        // then dropped.
        CheckResult beforeCompare = res.Clone();
        long highestCluster = await CompareRefcountsAsync(res, RepairMode.None, counts, cancellationToken).ConfigureAwait(false);

        if (_rebuild && (fix & RepairMode.Errors) != 0)
        {
            CheckResult old = res.Clone();
            long freshLeaks = 0;
            Report("Rebuilding refcount structure");
            await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
            await RebuildRefcountStructureAsync(res, counts, cancellationToken).ConfigureAwait(false);
            res.Corruptions = 0;
            res.Leaks = 0;

            // The references are counted again against the new refcount table.
            _rebuild = false;
            counts.Clear();
            _workLeft = WorkBudget(counts.Size);
            await CalculateRefcountsAsync(res, RepairMode.None, counts, cancellationToken).ConfigureAwait(false);
            if ((fix & RepairMode.Leaks) != 0)
            {
                // The old refcount structure is now leaked: free it. Leaks found here that cannot be freed were made by
                // the rebuild itself.
                var fresh = new CheckResult();
                highestCluster = await CompareRefcountsAsync(fresh, RepairMode.Leaks, counts, cancellationToken).ConfigureAwait(false);
                if (_rebuild)
                {
                    Report("ERROR rebuilt refcount structure is still broken");
                }

                freshLeaks = fresh.Leaks;
            }
            else
            {
                highestCluster = await CompareRefcountsAsync(new CheckResult(), RepairMode.None, counts, cancellationToken, silent: true).ConfigureAwait(false);
            }

            if (res.Corruptions < old.Corruptions)
            {
                res.CorruptionsFixed += old.Corruptions - res.Corruptions;
            }

            if (res.Leaks < old.Leaks)
            {
                res.LeaksFixed += old.Leaks - res.Leaks;
            }

            res.Leaks += freshLeaks;
        }
        else if (fix != RepairMode.None)
        {
            if (_rebuild)
            {
                Report("ERROR need to rebuild refcount structures");
                res.CheckErrors++;
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
            }

            if (res.Leaks != 0 || res.Corruptions != 0)
            {
                res.CopyFrom(beforeCompare);
                highestCluster = await CompareRefcountsAsync(res, fix, counts, cancellationToken).ConfigureAwait(false);
            }
        }

        await CheckCopiedFlagsAsync(res, fix, counts, cancellationToken).ConfigureAwait(false);
        res.ImageEndOffset = (highestCluster + 1) * _clusterSize;
    }

    /// <summary>
    /// How many L1 and L2 entries one counting pass may look at: more than any real image needs (every L2 table the file
    /// could hold, looked at 64 times — each snapshot adds at least a cluster of L1 table to the file — and at least 2^28
    /// entries, a quarter of a second of work), but finite when tables reference the same tables again and again, which
    /// would otherwise keep the check busy for hours.
    /// </summary>
    private long WorkBudget(long fileClusters) => Math.Max(1L << 28, fileClusters * _l2Size * 64);

    /// <summary>QEMU's calculate_refcounts: counts every reference to a host cluster.</summary>
    private async ValueTask CalculateRefcountsAsync(CheckResult res, RepairMode fix, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        // The header.
        Count(res, counts, 0, _clusterSize);

        // The active L1 table and its L2 tables.
        await CheckL1Async(res, counts, (long)_header.L1TableOffset, _header.L1Size, true, fix, true, cancellationToken).ConfigureAwait(false);

        // The snapshots' L1 tables and their L2 tables.
        if (_hasDataFile && Snapshots.Count > 0)
        {
            Report($"ERROR {Snapshots.Count} snapshots in image with data file");
            res.Corruptions++;
        }

        foreach (Qcow2Snapshot snapshot in Snapshots)
        {
            if ((snapshot.L1TableOffset & (ulong)(_clusterSize - 1)) != 0)
            {
                Report($"ERROR snapshot {snapshot.Id} ({snapshot.Name}) l1_offset={Qcow2ThrowHelper.Hex(snapshot.L1TableOffset)}: L1 table is not cluster aligned; snapshot table entry corrupted");
                res.Corruptions++;
                continue;
            }

            if (snapshot.L1Size > Qcow2Layout.MaxL1TableBytes / Qcow2Layout.L1EntrySize)
            {
                Report($"ERROR snapshot {snapshot.Id} ({snapshot.Name}) l1_size={Qcow2ThrowHelper.Hex((ulong)snapshot.L1Size)}: L1 table is too large; snapshot table entry corrupted");
                res.Corruptions++;
                continue;
            }

            await CheckL1Async(res, counts, (long)snapshot.L1TableOffset, snapshot.L1Size, false, fix, false, cancellationToken).ConfigureAwait(false);
        }

        // The snapshot table, the refcount table, the encryption header.
        Count(res, counts, _snapshotsOffset, _snapshotsSize);
        Count(res, counts, _refcounts.TableOffset, (long)_refcounts.TableSize * Qcow2Layout.RefcountTableEntrySize);
        if (_header.CryptoHeaderLength != 0)
        {
            Count(res, counts, (long)_header.CryptoHeaderOffset, (long)Math.Min(_header.CryptoHeaderLength, long.MaxValue));
        }

        await CheckBitmapsAsync(res, counts, cancellationToken).ConfigureAwait(false);
        await CheckRefcountBlocksAsync(res, fix, counts, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a reference to every cluster touching [<paramref name="offset"/>, + <paramref name="size"/>) (QEMU's
    /// qcow2_inc_refcounts_imrt). A region reaching a cluster or more past the end of the file is a corruption and is not
    /// counted; a count that would pass the refcount width is an overflow.
    /// </summary>
    private void Count(CheckResult res, Qcow2RefcountArray counts, long offset, long size)
    {
        if (size <= 0)
        {
            return;
        }

        // The last cluster of an image may be partly allocated, so a region may end up to one cluster past the end.
        // (Negative offsets, from 64-bit snapshot fields, cannot be in the file either.)
        long fileLength = _file.Length;
        if (offset < 0 || offset > long.MaxValue - size || offset + size - fileLength >= _clusterSize)
        {
            Report($"ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x{offset:x} size 0x{size:x}");
            res.Corruptions++;
            return;
        }

        long first = offset >> _clusterBits;
        long last = (offset + size - 1) >> _clusterBits;
        for (long cluster = first; cluster <= last; cluster++)
        {
            if (!counts.Increment(cluster))
            {
                Report($"ERROR: overflow cluster offset=0x{cluster << _clusterBits:x}");
                Report("Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing");
                res.Corruptions++;
            }
        }
    }

    /// <summary>
    /// QEMU's check_refcounts_l1: counts an L1 table, its L2 tables and the clusters they reference, checking the entries
    /// on the way. The L2 tables are read in batches, in as few requests as their placement allows.
    /// </summary>
    /// <param name="fragInfo">Count allocated, fragmented and compressed clusters (the active table only).</param>
    /// <param name="active">The active L1 table (decides which overlap the repair of an L2 entry must avoid).</param>
    private async ValueTask CheckL1Async(CheckResult res, Qcow2RefcountArray counts, long l1Offset, uint l1Size, bool fragInfo, RepairMode fix, bool active, CancellationToken cancellationToken)
    {
        if (l1Size == 0)
        {
            return;
        }

        long l1Bytes = (long)l1Size * Qcow2Layout.L1EntrySize;
        Count(res, counts, l1Offset, l1Bytes);
        ConsumeWork(res, l1Size);

        ulong[] l1 = await ReadL1Async(res, l1Offset, l1Bytes, cancellationToken).ConfigureAwait(false);
        int batchCount = Qcow2TableReader.BatchCount(_clusterSize);
        var indices = new List<int>(Math.Min(batchCount, l1.Length));
        int next = 0;
        while (true)
        {
            // The next batch of L1 entries that point to L2 tables.
            indices.Clear();
            for (; next < l1.Length && indices.Count < batchCount; next++)
            {
                if (l1[next] != 0)
                {
                    indices.Add(next);
                }
            }

            if (indices.Count == 0)
            {
                return;
            }

            long[] offsets = new long[indices.Count];
            for (int k = 0; k < offsets.Length; k++)
            {
                offsets[k] = (long)(l1[indices[k]] & Qcow2Layout.L1OffsetMask);
            }

            using var batch = new TableBatch(offsets, _clusterSize);
            await batch.ReadAsync(_file, cancellationToken).ConfigureAwait(false);
            for (int k = 0; k < offsets.Length; k++)
            {
                ulong entry = l1[indices[k]];
                if ((entry & L1ReservedMask) != 0)
                {
                    Report($"ERROR found L1 entry with reserved bits set: {entry:x}");
                    res.Corruptions++;
                }

                long l2Offset = offsets[k];
                Count(res, counts, l2Offset, _clusterSize);
                if ((l2Offset & (_clusterSize - 1)) != 0)
                {
                    Report($"ERROR l2_offset={l2Offset:x}: Table is not cluster aligned; L1 entry corrupted");
                    res.Corruptions++;
                }

                if (batch.Failure(k) is Exception failure)
                {
                    Report("ERROR: I/O error in check_refcounts_l2");
                    res.CheckErrors++;
                    throw AsErrno(failure);
                }

                ConsumeWork(res, _l2Size);
                await CheckL2Async(res, counts, l2Offset, batch, k, fragInfo, fix, active, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Reads an L1 table (at most 32 MiB), as QEMU's check does: from the file, never from memory.</summary>
    private async ValueTask<ulong[]> ReadL1Async(CheckResult res, long offset, long bytes, CancellationToken cancellationToken)
    {
        byte[] raw = new byte[bytes];
        try
        {
            if (offset < 0 || offset > MaxRequestEnd - bytes)
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
            }

            await _file.ReadAsync(offset, raw, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            Report("ERROR: I/O error in check_refcounts_l1");
            res.CheckErrors++;
            throw AsErrno(e);
        }

        var l1 = new ulong[bytes / Qcow2Layout.L1EntrySize];
        for (int i = 0; i < l1.Length; i++)
        {
            l1[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * Qcow2Layout.L1EntrySize));
        }

        return l1;
    }

    private void ConsumeWork(CheckResult res, long entries)
    {
        _workLeft -= entries;
        if (_workLeft < 0)
        {
            Report("ERROR: the L1 and L2 tables reference far more tables than the image can hold; giving up");
            res.CheckErrors++;
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }
    }

    /// <summary>
    /// QEMU's check_refcounts_l2: counts the clusters one L2 table references, checking each entry (reserved bits,
    /// alignment, compressed descriptors, subcluster bitmaps), and repairs unaligned preallocated zero clusters.
    /// </summary>
    private async ValueTask CheckL2Async(CheckResult res, Qcow2RefcountArray counts, long l2Offset, TableBatch batch, int slot, bool fragInfo, RepairMode fix, bool active, CancellationToken cancellationToken)
    {
        long nextContiguousOffset = 0;

        // All-zero entries (unallocated, nothing to count or check) are skipped in bulk.
        for (int i = NextNonZeroEntry(batch.Table(slot), 0); i < _l2Size; i = NextNonZeroEntry(batch.Table(slot), i + 1))
        {
            ReadOnlySpan<byte> table = batch.Table(slot);
            ulong entry = BinaryPrimitives.ReadUInt64BigEndian(table[(i * _l2EntrySize)..]);
            ulong bitmap = _hasSubclusters ? BinaryPrimitives.ReadUInt64BigEndian(table[(i * _l2EntrySize + 8)..]) : 0;

            Qcow2ClusterType type = new Qcow2L2Entry(entry, bitmap).GetClusterType(_hasSubclusters, _hasDataFile);
            if (type != Qcow2ClusterType.Compressed && (entry & Qcow2Layout.L2StandardReservedMask) != 0)
            {
                Report($"ERROR found l2 entry with reserved bits set: {entry:x}");
                res.Corruptions++;
            }

            switch (type)
            {
                case Qcow2ClusterType.Compressed:
                    if ((entry & Qcow2Layout.OflagCopied) != 0)
                    {
                        Report($"ERROR: coffset=0x{entry & _compressedOffsetMask:x}: copied flag must never be set for compressed clusters");
                        entry &= ~Qcow2Layout.OflagCopied;
                        res.Corruptions++;
                    }

                    if (_hasDataFile)
                    {
                        Report($"ERROR compressed cluster {i} with data file, entry=0x{entry:x}");
                        res.Corruptions++;
                        break;
                    }

                    if (bitmap != 0)
                    {
                        Report($"ERROR compressed cluster {i} with non-zero subcluster allocation bitmap, entry=0x{entry:x}");
                        res.Corruptions++;
                        break;
                    }

                    var compressed = new Qcow2L2Entry(entry, 0);
                    Count(res, counts, compressed.CompressedOffset(_clusterBits), compressed.CompressedLength(_clusterBits));
                    if (fragInfo)
                    {
                        // Compressed clusters are fragmented by nature: neighbours share sectors that are read again.
                        res.AllocatedClusters++;
                        res.CompressedClusters++;
                        res.FragmentedClusters++;
                    }

                    break;

                case Qcow2ClusterType.ZeroAllocated:
                case Qcow2ClusterType.Normal:
                    long offset = (long)(entry & Qcow2Layout.L2OffsetMask);
                    if (((bitmap >> 32) & bitmap) != 0)
                    {
                        res.Corruptions++;
                        Report($"ERROR offset={offset:x}: Allocated cluster has corrupted subcluster allocation bitmap");
                    }

                    if ((offset & (_clusterSize - 1)) != 0)
                    {
                        res.Corruptions++;
                        bool containsData = _hasSubclusters
                            ? (bitmap & Qcow2Layout.BitmapAllAllocated) != 0
                            : (entry & Qcow2Layout.OflagZero) == 0;
                        if (!containsData)
                        {
                            bool repair = (fix & RepairMode.Errors) != 0;
                            Report($"{(repair ? "Repairing" : "ERROR")} offset={offset:x}: Preallocated cluster is not properly aligned; L2 entry corrupted.");
                            if (repair)
                            {
                                // A preallocated zero cluster that points nowhere sensible just becomes a plain zero cluster.
                                if (await FixL2EntryByZeroAsync(res, l2Offset, batch, slot, i, active, cancellationToken).ConfigureAwait(false))
                                {
                                    continue;
                                }
                            }
                        }
                        else
                        {
                            Report($"ERROR offset={offset:x}: Data cluster is not properly aligned; L2 entry corrupted.");
                        }
                    }

                    if (fragInfo)
                    {
                        res.AllocatedClusters++;
                        if (nextContiguousOffset != 0 && offset != nextContiguousOffset)
                        {
                            res.FragmentedClusters++;
                        }

                        nextContiguousOffset = offset + _clusterSize;
                    }

                    if (!_hasDataFile)
                    {
                        Count(res, counts, offset, _clusterSize);
                    }

                    break;

                case Qcow2ClusterType.ZeroPlain:
                    break;

                default:
                    if ((bitmap & Qcow2Layout.BitmapAllAllocated) != 0)
                    {
                        res.Corruptions++;
                        Report("ERROR: Unallocated cluster has non-zero subcluster allocation map");
                    }

                    break;
            }
        }
    }

    /// <summary>
    /// QEMU's fix_l2_entry_by_zero: turns entry <paramref name="index"/> into a plain zero cluster (or its allocated
    /// subclusters into zero subclusters) on disk and in the batch.
    /// </summary>
    /// <returns>True when repaired; false when the write failed (the entry is then counted as it was).</returns>
    /// <exception cref="IOException">The entry overlaps other metadata: the check cannot go on.</exception>
    private async ValueTask<bool> FixL2EntryByZeroAsync(CheckResult res, long l2Offset, TableBatch batch, int slot, int index, bool active, CancellationToken cancellationToken)
    {
        await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
        Span<byte> table = batch.Table(slot);
        int position = index * _l2EntrySize;
        if (_hasSubclusters)
        {
            ulong bitmap = BinaryPrimitives.ReadUInt64BigEndian(table[(position + 8)..]);
            bitmap = (bitmap | (bitmap << 32)) & Qcow2Layout.BitmapAllZeroes;
            BinaryPrimitives.WriteUInt64BigEndian(table[(position + 8)..], bitmap);
            BinaryPrimitives.WriteUInt64BigEndian(table[position..], 0);
        }
        else
        {
            BinaryPrimitives.WriteUInt64BigEndian(table[position..], Qcow2Layout.OflagZero);
        }

        long entryOffset = l2Offset + position;
        byte[] bytes = table.Slice(position, _l2EntrySize).ToArray();
        if (await _image.CheckOverlapForCheckAsync(entryOffset, _l2EntrySize, active ? Qcow2CheckOverlap.ActiveL2 : Qcow2CheckOverlap.None, _report).ConfigureAwait(false))
        {
            Report("ERROR: Overlap check failed");
            res.CheckErrors++;
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
        }

        try
        {
            await _image.WriteMetadataSyncAsync(entryOffset, bytes, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            Report($"ERROR: Failed to overwrite L2 table entry: {Strerror(e)}");
            res.CheckErrors++;
            return false;
        }

        batch.Patch(entryOffset, bytes, slot);
        res.Corruptions--;
        res.CorruptionsFixed++;
        return true;
    }

    /// <summary>QEMU's qcow2_check_bitmaps_refcounts: the bitmap directory, the bitmap tables and the bitmap data clusters.</summary>
    private async ValueTask CheckBitmapsAsync(CheckResult res, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        if (!_header.HasBitmapsExtension || _header.BitmapCount == 0)
        {
            return;
        }

        Count(res, counts, (long)_header.BitmapDirectoryOffset, (long)_header.BitmapDirectorySize);
        List<Qcow2Bitmap> bitmaps;
        try
        {
            bitmaps = await Qcow2Bitmaps.ReadDirectoryAsync(_file, _header, _image.Length, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            res.Corruptions++;
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
        }

        foreach (Qcow2Bitmap bitmap in bitmaps)
        {
            long tableBytes = (long)bitmap.TableSize * 8;
            Count(res, counts, (long)bitmap.TableOffset, tableBytes);
            byte[] table = new byte[tableBytes];
            try
            {
                await _file.ReadAsync((long)bitmap.TableOffset, table, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                res.Corruptions++;
                throw AsErrno(e);
            }

            // The whole table is validated before any entry is counted (QEMU's bitmap_table_load).
            for (int i = 0; i < bitmap.TableSize; i++)
            {
                if (!IsValidBitmapEntry(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(i * 8))))
                {
                    res.Corruptions++;
                    throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
                }
            }

            for (int i = 0; i < bitmap.TableSize; i++)
            {
                long offset = (long)(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(i * 8)) & BitmapTableOffsetMask);
                if (offset != 0)
                {
                    Count(res, counts, offset, _clusterSize);
                }
            }
        }
    }

    private bool IsValidBitmapEntry(ulong entry)
    {
        if ((entry & BitmapTableReservedMask) != 0)
        {
            return false;
        }

        ulong offset = entry & BitmapTableOffsetMask;
        return offset == 0 || ((entry & BitmapTableFlagAllOnes) == 0 && offset % (ulong)_clusterSize == 0);
    }

    /// <summary>
    /// QEMU's check_refblocks: checks each refcount table entry and counts the refcount blocks; a block past the end of
    /// the file is repaired by growing the file to hold it, any other broken entry asks for a rebuild.
    /// </summary>
    private async ValueTask CheckRefcountBlocksAsync(CheckResult res, RepairMode fix, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        for (int i = 0; i < _refcounts.TableSize; i++)
        {
            ulong raw = _refcounts.RawTableEntry(i);
            long offset = (long)(raw & Qcow2Layout.RefcountTableOffsetMask);
            long cluster = (long)((ulong)offset >> _clusterBits);
            if ((raw & Qcow2Layout.RefcountTableReservedMask) != 0)
            {
                Report($"ERROR refcount table entry {i} has reserved bits set");
                res.Corruptions++;
                _rebuild = true;
                continue;
            }

            if ((offset & (_clusterSize - 1)) != 0)
            {
                Report($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
                res.Corruptions++;
                _rebuild = true;
                continue;
            }

            if (offset < 0 || cluster >= counts.Size)
            {
                res.Corruptions++;
                bool repair = (fix & RepairMode.Errors) != 0;
                Report($"{(repair ? "Repairing" : "ERROR")} refcount block {i} is outside image");
                if (repair)
                {
                    int errno = await GrowFileForBlockAsync(offset, counts, cancellationToken).ConfigureAwait(false);
                    if (errno == 0)
                    {
                        res.Corruptions--;
                        res.CorruptionsFixed++;
                        // The area was just allocated and zeroed: its count is exactly one now.
                        Count(res, counts, offset, _clusterSize);
                        continue;
                    }

                    _rebuild = true;
                    Report($"ERROR could not resize image: {Qcow2ThrowHelper.Errno(errno).Message}");
                }

                continue;
            }

            if (offset != 0)
            {
                Count(res, counts, offset, _clusterSize);
                ulong count = counts.Get(cluster);
                if (count != 1)
                {
                    Report($"ERROR refcount block {i} refcount={count}");
                    res.Corruptions++;
                    _rebuild = true;
                }
            }
        }
    }

    /// <summary>Grows the image file to hold a refcount block that lies past its end (QEMU does the same).</summary>
    /// <returns>0, or the errno of the failure.</returns>
    private async ValueTask<int> GrowFileForBlockAsync(long offset, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        if (offset < 0 || offset > long.MaxValue - _clusterSize)
        {
            return Qcow2ThrowHelper.EINVAL;
        }

        // qimg refuses to grow the file (and the counts with it) by more than it holds already, or past what the check
        // can count: such an entry is garbage, and the rebuild that follows replaces it.
        long newClusters = SizeToClusters(offset + _clusterSize);
        if (newClusters > int.MaxValue || newClusters - counts.Size > Math.Max(counts.Size, 1L << 20))
        {
            return Qcow2ThrowHelper.EFBIG;
        }

        await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _file.TruncateAsync(offset + _clusterSize, PreallocationMode.Off, exact: false, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            return e.HResult is > 0 and < 4096 ? e.HResult : Qcow2ThrowHelper.EIO;
        }

        long fileClusters = SizeToClusters(_file.Length);
        if (fileClusters > counts.Size)
        {
            counts.Resize(fileClusters);
        }

        return (offset >> _clusterBits) < counts.Size ? 0 : Qcow2ThrowHelper.EINVAL;
    }

    // ------------------------------------------------------------ comparison

    /// <summary>
    /// QEMU's compare_refcounts: compares every counted cluster with its stored refcount, reports the differences and,
    /// as <paramref name="fix"/> allows, sets leaked clusters' refcounts down and missing references' refcounts up. A
    /// used cluster with refcount 0 asks for a rebuild. Stored refcount blocks are read in batches; blocks equal to the
    /// counts are compared whole.
    /// </summary>
    /// <returns>The index of the last cluster that is counted or has a refcount (QEMU's highest_cluster; 0 if none).</returns>
    private async ValueTask<long> CompareRefcountsAsync(CheckResult res, RepairMode fix, Qcow2RefcountArray counts, CancellationToken cancellationToken, bool silent = false)
    {
        // Refcount updates made so far must be in the file: the stored blocks are read from it.
        await _refcounts.BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);

        long size = counts.Size;
        long blockCount = counts.BlockCount;
        _storedBlocks = new byte[]?[blockCount];
        _unreadableBlocks = new Exception?[blockCount];
        _comparedSize = size;
        long highest = 0;
        int order = _header.RefcountOrder;
        int batchCount = Qcow2TableReader.BatchCount(_clusterSize);
        for (long firstBlock = 0; firstBlock < blockCount; firstBlock += batchCount)
        {
            int count = (int)Math.Min(batchCount, blockCount - firstBlock);

            // Where each block of the batch comes from: a slot of the read batch, or none (no block: all zero).
            var slots = new int[count];
            var toRead = new List<long>(count);
            for (int k = 0; k < count; k++)
            {
                long blockIndex = firstBlock + k;
                long offset = blockIndex < _refcounts.TableSize ? (long)(_refcounts.RawTableEntry((int)blockIndex) & Qcow2Layout.RefcountTableOffsetMask) : 0;
                slots[k] = -1;
                if (offset != 0 && (offset & (_clusterSize - 1)) != 0)
                {
                    // QEMU's qcow2_get_refcount signals the corruption (once) and fails for every cluster of the block.
                    if (!silent)
                    {
                        await _image.SignalCorruptionForCheckAsync($"Refblock offset {Qcow2ThrowHelper.Hex(offset)} unaligned (reftable index: {Qcow2ThrowHelper.Hex(blockIndex)})", _report).ConfigureAwait(false);
                    }

                    _unreadableBlocks[blockIndex] = Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
                }
                else if (offset != 0)
                {
                    slots[k] = toRead.Count;
                    toRead.Add(offset);
                }
            }

            using var batch = new TableBatch([.. toRead], _clusterSize);
            await batch.ReadAsync(_file, cancellationToken).ConfigureAwait(false);
            for (int k = 0; k < count; k++)
            {
                long blockIndex = firstBlock + k;
                long first = blockIndex * counts.BlockEntries;
                long end = Math.Min(first + counts.BlockEntries, size);
                if (slots[k] >= 0 && batch.Failure(slots[k]) is Exception readFailure)
                {
                    _unreadableBlocks[blockIndex] = readFailure;
                }

                if (_unreadableBlocks[blockIndex] is Exception failure)
                {
                    if (!silent)
                    {
                        string reason = Strerror(failure);
                        for (long i = first; i < end; i++)
                        {
                            Report($"Can't get refcount for cluster {i}: {reason}");
                        }
                    }

                    res.CheckErrors += end - first;
                    continue;
                }

                byte[] stored = new byte[_clusterSize];
                if (slots[k] >= 0)
                {
                    batch.Table(slots[k]).CopyTo(stored);
                }

                byte[]? computed = counts.Block(blockIndex);
                int bytes = (int)((((end - first) << order) + 7) >> 3);
                if (computed is null ? stored.AsSpan(0, bytes).IndexOfAnyExcept((byte)0) < 0 : stored.AsSpan(0, bytes).SequenceEqual(computed.AsSpan(0, bytes)))
                {
                    long last = counts.LastNonZero(stored, blockIndex, end);
                    if (last >= 0)
                    {
                        highest = last;
                    }

                    if (end - first < counts.BlockEntries && stored.AsSpan(bytes).IndexOfAnyExcept((byte)0) >= 0)
                    {
                        // Refcounts past the compared clusters: keep them for the copied-flag check.
                        _storedBlocks[blockIndex] = stored;
                    }

                    continue;
                }

                _storedBlocks[blockIndex] = stored;
                for (long i = first; i < end; i++)
                {
                    ulong refcount = Qcow2RefcountBlock.Get(stored, i - first, order);
                    ulong reference = counts.Get(i);
                    if (refcount > 0 || reference > 0)
                    {
                        highest = i;
                    }

                    if (refcount == reference)
                    {
                        continue;
                    }

                    bool fixLeak = false;
                    bool fixCorruption = false;
                    if (refcount == 0)
                    {
                        _rebuild = true;
                    }
                    else if (refcount > reference && (fix & RepairMode.Leaks) != 0)
                    {
                        fixLeak = true;
                    }
                    else if (refcount < reference && (fix & RepairMode.Errors) != 0)
                    {
                        fixCorruption = true;
                    }

                    if (!silent)
                    {
                        string what = fixLeak || fixCorruption ? "Repairing" : refcount < reference ? "ERROR" : "Leaked";
                        Report($"{what} cluster {i} refcount={refcount} reference={reference}");
                    }

                    if ((fixLeak || fixCorruption) && await TryUpdateRefcountAsync(i, refcount, reference, cancellationToken).ConfigureAwait(false))
                    {
                        Qcow2RefcountBlock.Set(stored, i - first, reference, order);
                        if (fixLeak)
                        {
                            res.LeaksFixed++;
                        }
                        else
                        {
                            res.CorruptionsFixed++;
                        }

                        continue;
                    }

                    if (refcount < reference)
                    {
                        res.Corruptions++;
                    }
                    else
                    {
                        res.Leaks++;
                    }
                }
            }
        }

        return highest;
    }

    /// <summary>Sets the refcount of cluster <paramref name="index"/> from <paramref name="refcount"/> to <paramref name="reference"/> through the refcount engine.</summary>
    private async ValueTask<bool> TryUpdateRefcountAsync(long index, ulong refcount, ulong reference, CancellationToken cancellationToken)
    {
        await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
        bool decrease = refcount > reference;
        ulong difference = decrease ? refcount - reference : reference - refcount;
        try
        {
            return !await _refcounts.UpdateRefcountAsync(index << _clusterBits, 1, difference, decrease, Qcow2DiscardType.Always, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>
    /// The stored refcount of cluster <paramref name="index"/> as the last comparison left it (after its repairs), when it
    /// is known without reading: false means <see cref="StoredRefcountAsync"/> must look it up.
    /// </summary>
    /// <param name="readable">False when the refcount cannot be read (QEMU's qcow2_get_refcount failing).</param>
    private bool TryGetStoredRefcount(long index, Qcow2RefcountArray counts, out ulong refcount, out bool readable)
    {
        long blockIndex = index >> counts.BlockBits;
        readable = true;
        refcount = 0;
        if (index < _comparedSize)
        {
            if (_unreadableBlocks[blockIndex] is not null)
            {
                readable = false;
                return true;
            }

            refcount = _storedBlocks[blockIndex] is byte[] stored
                ? Qcow2RefcountBlock.Get(stored, index & (counts.BlockEntries - 1), _header.RefcountOrder)
                : counts.Get(index);
            return true;
        }

        if (blockIndex < _storedBlocks.Length && _storedBlocks[blockIndex] is byte[] partial)
        {
            refcount = Qcow2RefcountBlock.Get(partial, index & (counts.BlockEntries - 1), _header.RefcountOrder);
            return true;
        }

        return false;
    }

    /// <summary>
    /// The stored refcount of cluster <paramref name="index"/> as the last comparison left it (after its repairs), or
    /// null when it cannot be read (QEMU's qcow2_get_refcount failing; the caller then skips the entry silently).
    /// </summary>
    private async ValueTask<ulong?> StoredRefcountAsync(long index, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        if (TryGetStoredRefcount(index, counts, out ulong known, out bool readable))
        {
            return readable ? known : null;
        }

        long blockIndex = index >> counts.BlockBits;

        // Past the clusters the comparison saw (a reference past the end of the file): ask the refcount structure.
        if (blockIndex >= _refcounts.TableSize)
        {
            return 0;
        }

        long offset = (long)(_refcounts.RawTableEntry((int)blockIndex) & Qcow2Layout.RefcountTableOffsetMask);
        if (offset == 0)
        {
            return 0;
        }

        if ((offset & (_clusterSize - 1)) != 0)
        {
            await _image.SignalCorruptionForCheckAsync($"Refblock offset {Qcow2ThrowHelper.Hex(offset)} unaligned (reftable index: {Qcow2ThrowHelper.Hex(blockIndex)})", _report).ConfigureAwait(false);
            return null;
        }

        try
        {
            return await _refcounts.GetRefcountAsync(index, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            return null;
        }
    }

    // ------------------------------------------------------------ copied flags

    /// <summary>
    /// QEMU's check_oflag_copied: the copied flag of every active L1 and L2 entry must say whether the refcount is
    /// exactly one. Repaired with <see cref="RepairMode.Errors"/>, or with <see cref="RepairMode.Leaks"/> when the
    /// refcounts are known to be right.
    /// </summary>
    private async ValueTask CheckCopiedFlagsAsync(CheckResult res, RepairMode fix, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        bool repair = (fix & RepairMode.Errors) != 0
            || ((fix & RepairMode.Leaks) != 0 && res.CheckErrors == 0 && res.Corruptions == 0 && res.Leaks == 0);
        int batchCount = Qcow2TableReader.BatchCount(_clusterSize);
        var indices = new List<int>(batchCount);
        int next = 0;
        while (true)
        {
            indices.Clear();
            for (; next < _map.L1Size && indices.Count < batchCount; next++)
            {
                if ((_map.L1Entry(next) & Qcow2Layout.L1OffsetMask) != 0)
                {
                    indices.Add(next);
                }
            }

            if (indices.Count == 0)
            {
                return;
            }

            long[] offsets = indices.ConvertAll(i => (long)(_map.L1Entry(i) & Qcow2Layout.L1OffsetMask)).ToArray();
            using var batch = new TableBatch(offsets, _clusterSize);
            await batch.ReadAsync(_file, cancellationToken).ConfigureAwait(false);
            for (int k = 0; k < offsets.Length; k++)
            {
                int l1Index = indices[k];
                ulong l1Entry = _map.L1Entry(l1Index);
                long l2Offset = offsets[k];
                ulong? l2Refcount = await StoredRefcountAsync(l2Offset >> _clusterBits, counts, cancellationToken).ConfigureAwait(false);
                if (l2Refcount is not ulong refcount)
                {
                    continue;
                }

                if ((refcount == 1) != ((l1Entry & Qcow2Layout.OflagCopied) != 0))
                {
                    res.Corruptions++;
                    Report($"{(repair ? "Repairing" : "ERROR")} OFLAG_COPIED L2 cluster: l1_index={l1Index} l1_entry={l1Entry:x} refcount={refcount}");
                    if (repair)
                    {
                        await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
                        _map.SetL1Entry(l1Index, refcount == 1 ? l1Entry | Qcow2Layout.OflagCopied : l1Entry & ~Qcow2Layout.OflagCopied);
                        try
                        {
                            await _map.WriteL1EntryAsync(l1Index, cancellationToken).ConfigureAwait(false);
                        }
                        catch (IOException e)
                        {
                            res.CheckErrors++;
                            throw AsErrno(e);
                        }

                        res.Corruptions--;
                        res.CorruptionsFixed++;
                    }
                }

                if (batch.Failure(k) is Exception failure)
                {
                    Report($"ERROR: Could not read L2 table: {Strerror(failure)}");
                    res.CheckErrors++;
                    throw AsErrno(failure);
                }

                int dirty = 0;
                for (int j = NextNonZeroEntry(batch.Table(k), 0); j < _l2Size; j = NextNonZeroEntry(batch.Table(k), j + 1))
                {
                    ulong entry = BinaryPrimitives.ReadUInt64BigEndian(batch.Table(k)[(j * _l2EntrySize)..]);

                    Qcow2ClusterType type = new Qcow2L2Entry(entry, 0).GetClusterType(_hasSubclusters, _hasDataFile);
                    if (type is not (Qcow2ClusterType.Normal or Qcow2ClusterType.ZeroAllocated))
                    {
                        continue;
                    }

                    ulong dataRefcount;
                    if (_hasDataFile)
                    {
                        dataRefcount = 1;
                    }
                    else
                    {
                        long dataCluster = (long)((entry & Qcow2Layout.L2OffsetMask) >> _clusterBits);
                        if (!TryGetStoredRefcount(dataCluster, counts, out dataRefcount, out bool readable))
                        {
                            ulong? stored = await StoredRefcountAsync(dataCluster, counts, cancellationToken).ConfigureAwait(false);
                            (dataRefcount, readable) = (stored ?? 0, stored is not null);
                        }

                        if (!readable)
                        {
                            continue;
                        }
                    }

                    if ((dataRefcount == 1) != ((entry & Qcow2Layout.OflagCopied) != 0))
                    {
                        res.Corruptions++;
                        Report($"{(repair ? "Repairing" : "ERROR")} OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={dataRefcount}");
                        if (repair)
                        {
                            ulong fixedEntry = dataRefcount == 1 ? entry | Qcow2Layout.OflagCopied : entry & ~Qcow2Layout.OflagCopied;
                            BinaryPrimitives.WriteUInt64BigEndian(batch.Table(k)[(j * _l2EntrySize)..], fixedEntry);
                            dirty++;
                        }
                    }
                }

                if (dirty > 0)
                {
                    await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
                    if (await _image.CheckOverlapForCheckAsync(l2Offset, _clusterSize, Qcow2CheckOverlap.ActiveL2, _report).ConfigureAwait(false))
                    {
                        Report($"ERROR: Could not write L2 table; metadata overlap check failed: {Strerror(Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO))}");
                        res.CheckErrors++;
                        throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
                    }

                    byte[] data = batch.Table(k).ToArray();
                    try
                    {
                        await _image.WriteMetadataAsync(l2Offset, data, cancellationToken).ConfigureAwait(false);
                    }
                    catch (IOException e)
                    {
                        Report($"ERROR: Could not write L2 table: {Strerror(e)}");
                        res.CheckErrors++;
                        throw AsErrno(e);
                    }

                    batch.Patch(l2Offset, data, k);
                    res.Corruptions -= dirty;
                    res.CorruptionsFixed += dirty;
                }
            }
        }
    }

    // ------------------------------------------------------------ helpers

    /// <summary>The first L2 entry from <paramref name="index"/> on with a non-zero byte (descriptor or bitmap), or L2Size.</summary>
    private int NextNonZeroEntry(ReadOnlySpan<byte> table, int index)
    {
        if (index >= _l2Size)
        {
            return _l2Size;
        }

        int found = table[(index * _l2EntrySize)..].IndexOfAnyExcept((byte)0);
        return found < 0 ? _l2Size : index + found / _l2EntrySize;
    }

    private long SizeToClusters(long size) => (long)(((ulong)size + (ulong)_clusterSize - 1) >> _clusterBits);

    private void Report(string text) => _report?.Invoke(new CheckMessage(text));

    private void ReportError(string text) => _report?.Invoke(new CheckMessage(text, IsError: true));

    /// <summary>The strerror text of a failure (its errno when it has one).</summary>
    private static string Strerror(Exception e) => Diagnostics.ErrorText.Describe(e);

    /// <summary>An exception that ends the check with the failure's errno (EIO when it has none).</summary>
    private static IOException AsErrno(Exception e) =>
        e is IOException io && io.GetType() == typeof(IOException) && io.HResult is > 0 and < 4096
            ? io
            : Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);

    /// <summary>
    /// A batch of cluster-sized tables read with <see cref="Qcow2TableReader"/> into one pooled buffer. Repairs that write
    /// into a table patch every copy in the batch, so that a table listed twice is seen as QEMU, which reads it again,
    /// would see it.
    /// </summary>
    private sealed class TableBatch : IDisposable
    {
        private readonly long[] _offsets;
        private readonly int _tableSize;
        private byte[] _buffer;
        private Exception?[]? _failures;

        public TableBatch(long[] offsets, int tableSize)
        {
            _offsets = offsets;
            _tableSize = tableSize;
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, offsets.Length * tableSize));
        }

        public async ValueTask ReadAsync(BlockNode file, CancellationToken cancellationToken)
        {
            // Tables that start past QEMU's request limit fail to read, as there.
            var readable = new long[_offsets.Length];
            for (int i = 0; i < _offsets.Length; i++)
            {
                readable[i] = _offsets[i] is >= 0 and <= MaxRequestEnd ? _offsets[i] : 0;
            }

            _failures = await Qcow2TableReader.ReadAsync(file, readable, readable.Length, _tableSize, _buffer, cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < _offsets.Length; i++)
            {
                if (readable[i] != _offsets[i])
                {
                    _failures ??= new Exception?[_offsets.Length];
                    _failures[i] = Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
                }
            }
        }

        public Span<byte> Table(int slot) => _buffer.AsSpan(slot * _tableSize, _tableSize);

        public Exception? Failure(int slot) => _failures?[slot];

        /// <summary>Copies bytes written at <paramref name="offset"/> into the other tables of the batch that cover them.</summary>
        public void Patch(long offset, ReadOnlySpan<byte> data, int writtenSlot)
        {
            for (int i = 0; i < _offsets.Length; i++)
            {
                if (i == writtenSlot)
                {
                    continue;
                }

                long start = Math.Max(offset, _offsets[i]);
                long end = Math.Min(offset + data.Length, _offsets[i] + _tableSize);
                if (start < end)
                {
                    data.Slice((int)(start - offset), (int)(end - start)).CopyTo(Table(i)[(int)(start - _offsets[i])..]);
                }
            }
        }

        public void Dispose()
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
