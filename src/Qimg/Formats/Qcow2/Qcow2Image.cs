using System.Buffers;
using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>How a qcow2 image is opened (the driver's and the creator's settings).</summary>
/// <param name="ReadOnly">Open without writing.</param>
/// <param name="Warning">Receives QEMU's warnings (warn_report texts).</param>
/// <param name="OpenDataFile">Opens the external data file the header names (through the open policy).</param>
/// <param name="DataFile">An already opened data file node (image creation); the image then owns it.</param>
/// <param name="FlushFile">Whether metadata writes are made durable with file flushes (off while creating, as QEMU does).</param>
/// <param name="MetadataOnly">Only metadata will be read (QEMU's BDRV_O_NO_IO, as <c>info</c> opens): the external data file
/// is not opened, encrypted images can be opened, and guest data cannot be read.</param>
/// <param name="Check">
/// Open to be checked (QEMU's BDRV_O_CHECK): a corrupt image may be opened for writing, a missing refcount table is
/// accepted, the snapshot table is left to the check, and a dirty image is not repaired on open.
/// </param>
/// <param name="CheckReport">Receives the report of the repair of a dirty image on a writable open.</param>
internal sealed record Qcow2OpenParameters(
    bool ReadOnly,
    Action<string>? Warning,
    Func<string, CancellationToken, ValueTask<BlockNode>>? OpenDataFile,
    BlockNode? DataFile = null,
    bool FlushFile = true,
    bool MetadataOnly = false,
    bool Check = false,
    Action<CheckMessage>? CheckReport = null)
{
    /// <summary>Receives the lines QEMU prints verbatim on stderr (corruption reports); null sends them to <see cref="Warning"/>.</summary>
    public Action<string>? Message { get; init; }
}

/// <summary>
/// An open qcow2 image (version 2 or 3): reads, block status, writes, zero writes, discards, flushes and info.
/// Corresponds to QEMU's <c>block/qcow2.c</c>; the subsystems live in <see cref="Qcow2ClusterMap"/> (L1/L2),
/// <see cref="Qcow2Refcounts"/> (host cluster allocation) and <see cref="Qcow2MetadataCache"/>.
/// </summary>
/// <remarks>
/// <para>
/// Thread-safe: metadata is only touched under one asynchronous lock (QEMU's <c>s-&gt;lock</c>); guest data is read and
/// written outside it, so concurrent requests overlap their data I/O. Writes that allocate register their clusters as
/// in flight; overlapping writes wait for them.
/// </para>
/// <para>
/// Disposing a writable image writes the cached metadata back and clears the dirty bit, like QEMU's close.
/// Inconsistent metadata found during a request fails it with <see cref="InvalidDataException"/>; a writable image is
/// then marked corrupt and refuses further requests.
/// </para>
/// </remarks>
public sealed partial class Qcow2Image : FormatNode
{
    private readonly Qcow2Header _header;
    private readonly BlockNode _dataFile;
    private readonly bool _ownsDataFile;
    private readonly bool _dataFileMissing;
    private readonly SemaphoreSlim _lock;
    private readonly Qcow2Refcounts _refcounts;
    private readonly Qcow2ClusterMap _map;
    private readonly List<Qcow2Snapshot> _snapshots;
    private readonly List<Qcow2Bitmap> _bitmaps;
    private readonly Action<string>? _warning;
    private readonly Action<string>? _message;
    private readonly bool _flushFile;
    private InfoObject? _encryption;
    private long _length;
    private bool _signaledCorruption;
    private bool _failed;
    private int _preallocationState;

    private Qcow2Image(
        BlockNode file,
        bool readOnly,
        Qcow2Header header,
        BlockNode dataFile,
        bool ownsDataFile,
        Qcow2Refcounts refcounts,
        Qcow2ClusterMap map,
        List<Qcow2Snapshot> snapshots,
        List<Qcow2Bitmap> bitmaps,
        SemaphoreSlim metadataLock,
        Qcow2OpenParameters parameters)
        : base(file, readOnly)
    {
        _lock = metadataLock;
        _header = header;
        _dataFile = dataFile;
        _ownsDataFile = ownsDataFile;
        _dataFileMissing = header.HasExternalDataFile && dataFile == file;
        _refcounts = refcounts;
        _map = map;
        _snapshots = snapshots;
        _bitmaps = bitmaps;
        _warning = parameters.Warning;
        _message = parameters.Message ?? parameters.Warning;
        _flushFile = parameters.FlushFile;
        _length = (long)(header.Size / 512 * 512);
        BackingFileName = header.BackingFile;
        BackingFormat = header.BackingFile is null ? null : header.BackingFormat;
        _map.HasBacking = () => Backing is not null;
        _map.NonFatalCorruption = message => Report(false, message);
        _map.DataFile = HasExternalDataFile ? _dataFile : null;
        _refcounts.Message = parameters.Message ?? parameters.Warning;
    }

    public override string DriverName => "qcow2";

    /// <summary>The virtual disk size (the header's size rounded down to 512 bytes, as QEMU reports it).</summary>
    public override long Length => Volatile.Read(ref _length);

    public override bool SupportsBacking => true;

    public override int ClusterSize => _header.ClusterSize;

    public override bool IsDirty => _header.IsDirty;

    public override bool IsEncrypted => _header.CryptMethod != Qcow2Layout.CryptNone;

    public override BlockLimits Limits => new(1, 32 << 20, 1, _header.ClusterSize);

    /// <summary>qcow2 version: 2 (compat=0.10) or 3 (compat=1.1).</summary>
    public int Version => _header.Version;

    /// <summary>Width of refcount entries in bits.</summary>
    public int RefcountBits => _header.RefcountBits;

    /// <summary>The image uses extended L2 entries (32 subclusters per cluster).</summary>
    public bool HasExtendedL2 => _header.HasSubclusters;

    /// <summary>The corrupt bit is set.</summary>
    public bool IsCorrupt => _header.IsCorrupt;

    /// <summary>Guest data lives in an external data file.</summary>
    public bool HasExternalDataFile => _header.HasExternalDataFile;

    /// <summary>The node holding guest data: the image file itself, or the external data file.</summary>
    public BlockNode DataFile => _dataFile;

    /// <summary>The data file name stored in the header, or null.</summary>
    public string? DataFileName => _header.DataFile;

    /// <summary>"zlib" or "zstd".</summary>
    public string CompressionType => _header.CompressionType == Qcow2Layout.CompressionZstd ? "zstd" : "zlib";

    public override IReadOnlyList<SnapshotInfo> Snapshots =>
        HasExternalDataFile ? [] : _snapshots.ConvertAll(Qcow2Snapshots.ToInfo);

    public override IReadOnlyList<BlockChild> Children
    {
        get
        {
            ChildRole fileRole = ChildRole.Primary | ChildRole.Metadata | (HasExternalDataFile ? ChildRole.None : ChildRole.Data);
            var children = new List<BlockChild> { new("file", File, fileRole) };
            if (Backing is not null)
            {
                children.Add(new("backing", Backing, ChildRole.Cow));
            }

            if (HasExternalDataFile && !_dataFileMissing)
            {
                children.Add(new("data-file", _dataFile, ChildRole.Data));
            }

            return children;
        }
    }

    // ------------------------------------------------------------ open

    /// <summary>
    /// Opens the image in <paramref name="file"/>: parses and validates the header (QEMU's checks, messages and order),
    /// loads the L1 and refcount tables (bounded by QEMU's 32 MiB and 8 MiB limits), opens an external data file, and
    /// reads the snapshot table and bitmap directory. The image owns <paramref name="file"/> only on success.
    /// </summary>
    internal static async ValueTask<Qcow2Image> OpenAsync(BlockNode file, Qcow2OpenParameters parameters, CancellationToken cancellationToken)
    {
        byte[] start = new byte[Qcow2Header.FixedPartSize];
        await file.ReadAsync(0, start, cancellationToken).ConfigureAwait(false);
        int clusterBits = Qcow2Header.ReadClusterBits(start);
        byte[] cluster = new byte[1 << clusterBits];
        await file.ReadAsync(0, cluster, cancellationToken).ConfigureAwait(false);
        Qcow2Header header = Qcow2Header.Parse(cluster, !parameters.ReadOnly && !parameters.Check, parameters.Warning, parameters.Check);

        ulong[] l1 = await Qcow2ClusterMap.LoadL1Async(file, header, cancellationToken).ConfigureAwait(false);
        Func<CancellationToken, ValueTask> flush = parameters.FlushFile && !parameters.ReadOnly
            ? ct => file.FlushAsync(ct)
            : static _ => default;
        var refcountCache = new Qcow2MetadataCache("refcount block", file, Math.Max(4, (256 << 10) >> clusterBits), header.ClusterSize, flush);
        Qcow2Refcounts refcounts = await Qcow2Refcounts.LoadAsync(file, header, refcountCache, cancellationToken).ConfigureAwait(false);
        var l2Cache = new Qcow2MetadataCache("L2 table", file, L2CacheCapacity(header), header.ClusterSize, flush);
        refcounts.L2Cache = l2Cache;

        BlockNode dataFile = file;
        bool ownsDataFile = false;
        try
        {
            if (parameters.MetadataOnly && parameters.DataFile is null)
            {
                // Metadata only (QEMU's BDRV_O_NO_IO since the CVE-2024-4467 fix): the data file is neither opened nor
                // checked; the image file stands in for it, and guest reads are refused.
            }
            else if (header.HasExternalDataFile)
            {
                if (parameters.DataFile is not null)
                {
                    dataFile = parameters.DataFile;
                }
                else if (header.DataFile is not null && parameters.OpenDataFile is not null)
                {
                    dataFile = await parameters.OpenDataFile(header.DataFile, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    throw new InvalidDataException("'data-file' is required for this image");
                }

                ownsDataFile = dataFile != file;
            }
            else if (header.IsDataFileRaw)
            {
                throw new InvalidDataException("data-file-raw requires a data file");
            }

            InfoObject? encryption = null;
            if (header.CryptMethod != Qcow2Layout.CryptNone)
            {
                // qimg cannot decrypt: encrypted images open for their metadata only (info), with QEMU's header checks.
                if (header.CryptMethod == Qcow2Layout.CryptLuks && header.CryptoHeaderOffset == 0 && !parameters.MetadataOnly)
                {
                    throw new InvalidDataException($"Missing CRYPTO header for crypt method {header.CryptMethod}");
                }

                encryption = await Qcow2Encryption.ReadInfoAsync(file, header, cancellationToken).ConfigureAwait(false);
                if (!parameters.MetadataOnly)
                {
                    throw new NotSupportedException("Encrypted qcow2 images are not supported by qimg (only 'info' can read them)");
                }
            }

            long virtualSize = (long)(header.Size / 512 * 512);
            // A check reads (and repairs) the snapshot table itself; a broken one must not keep the image from opening.
            List<Qcow2Snapshot> snapshots = parameters.Check
                ? []
                : await Qcow2Snapshots.ReadAsync(file, header, virtualSize, cancellationToken).ConfigureAwait(false);
            List<Qcow2Bitmap> bitmaps = await Qcow2Bitmaps.ReadDirectoryAsync(file, header, virtualSize, cancellationToken).ConfigureAwait(false);

            var metadataLock = new SemaphoreSlim(1, 1);
            var map = new Qcow2ClusterMap(file, header, refcounts, l1, l2Cache, metadataLock, header.HasExternalDataFile);
            var image = new Qcow2Image(file, parameters.ReadOnly, header, dataFile, ownsDataFile, refcounts, map, snapshots, bitmaps, metadataLock, parameters)
            {
                _encryption = encryption,
            };
            image.ConfigureWriting();
            await image.OpenBitmapsAsync(!parameters.MetadataOnly, cancellationToken).ConfigureAwait(false);
            if (!parameters.ReadOnly && !parameters.Check && header.IsDirty)
            {
                await image.RepairDirtyAsync(parameters.CheckReport, cancellationToken).ConfigureAwait(false);
            }

            return image;
        }
        catch
        {
            if (ownsDataFile && parameters.DataFile is null)
            {
                await dataFile.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>
    /// Tables in the L2 cache: enough to map the whole disk, within QEMU's default 32 MiB of L2 cache, and at least 4
    /// (a request pins at most two at a time).
    /// </summary>
    private static int L2CacheCapacity(Qcow2Header header)
    {
        long perTable = (long)header.ClusterSize / header.L2EntrySize * header.ClusterSize;
        long needed = (long)(header.Size / (ulong)perTable) + 1;
        long budget = (32L << 20) / header.ClusterSize;
        return (int)Math.Max(4, Math.Min(needed, budget));
    }

    // ------------------------------------------------------------ read

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ThrowIfDataFileMissing();
        while (!buffer.IsEmpty)
        {
            Qcow2Mapping mapping = await LookupAsync(offset, buffer.Length, cancellationToken).ConfigureAwait(false);
            int chunk = (int)Math.Min(mapping.Length, buffer.Length);
            Memory<byte> part = buffer[..chunk];
            switch (mapping.Type)
            {
                case Qcow2SubclusterType.ZeroPlain:
                case Qcow2SubclusterType.ZeroAllocated:
                    part.Span.Clear();
                    break;
                case Qcow2SubclusterType.UnallocatedPlain:
                case Qcow2SubclusterType.UnallocatedAllocated:
                    if (Backing is { } backing)
                    {
                        await backing.ReadAsync(offset, part, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        part.Span.Clear();
                    }

                    break;
                case Qcow2SubclusterType.Compressed:
                    await ReadCompressedAsync(mapping.Entry, offset, part, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    await _dataFile.ReadAsync(mapping.HostOffset, part, cancellationToken).ConfigureAwait(false);
                    break;
            }

            offset += chunk;
            buffer = buffer[chunk..];
        }
    }

    /// <summary>Looks up a mapping under the metadata lock, turning corruption into a report.</summary>
    private async ValueTask<Qcow2Mapping> LookupAsync(long offset, long bytes, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await _map.GetHostOffsetAsync(offset, Math.Min(bytes, int.MaxValue), cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
        {
            await SignalCorruptionAsync(e).ConfigureAwait(false);
            throw;
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask ReadCompressedAsync(Qcow2L2Entry entry, long offset, Memory<byte> part, CancellationToken cancellationToken)
    {
        int clusterSize = _header.ClusterSize;
        long hostOffset = entry.CompressedOffset(_header.ClusterBits);
        int length = entry.CompressedLength(_header.ClusterBits);
        byte[] compressed = ArrayPool<byte>.Shared.Rent(length);
        byte[] cluster = ArrayPool<byte>.Shared.Rent(clusterSize);
        try
        {
            await File.ReadAsync(hostOffset, compressed.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            if (!Qcow2Compression.TryDecompress(_header.CompressionType, compressed.AsSpan(0, length), cluster.AsSpan(0, clusterSize)))
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
            }

            cluster.AsSpan((int)(offset & (clusterSize - 1)), part.Length).CopyTo(part.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(compressed);
            ArrayPool<byte>.Shared.Return(cluster);
        }
    }

    // ------------------------------------------------------------ block status

    /// <summary>
    /// QEMU's qcow2_co_block_status: data clusters are Data|OffsetValid in the data file (Recurse when the image has
    /// preallocated metadata, so the file's holes show as zero), zero clusters are Zero (OffsetValid when preallocated),
    /// compressed clusters are Data without an offset, unallocated ranges have no flags; the answer covers a run of
    /// subclusters of one type that are contiguous on the host, within one L2 table.
    /// </summary>
    protected override async ValueTask<BlockStatus> GetBlockStatusCoreAsync(long offset, long length, bool wantZero, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        ThrowIfDataFileMissing();
        bool preallocated = await IsMetadataPreallocatedAsync(cancellationToken).ConfigureAwait(false);
        Qcow2Mapping mapping = await LookupAsync(offset, length, cancellationToken).ConfigureAwait(false);
        BlockStatusFlags flags = BlockStatusFlags.None;
        BlockNode? host = null;
        long hostOffset = 0;
        if (mapping.Type is Qcow2SubclusterType.Normal or Qcow2SubclusterType.ZeroAllocated or Qcow2SubclusterType.UnallocatedAllocated)
        {
            flags |= BlockStatusFlags.OffsetValid;
            host = _dataFile;
            hostOffset = mapping.HostOffset;
        }

        if (mapping.Type is Qcow2SubclusterType.ZeroPlain or Qcow2SubclusterType.ZeroAllocated)
        {
            flags |= BlockStatusFlags.Zero;
        }
        else if (mapping.Type is not (Qcow2SubclusterType.UnallocatedPlain or Qcow2SubclusterType.UnallocatedAllocated))
        {
            flags |= BlockStatusFlags.Data;
        }

        if (preallocated && (flags & BlockStatusFlags.Data) != 0 && (flags & BlockStatusFlags.OffsetValid) != 0)
        {
            flags |= BlockStatusFlags.Recurse;
        }

        return new BlockStatus(flags, Math.Min(mapping.Length, length), host, hostOffset);
    }

    /// <summary>
    /// QEMU's qcow2_detect_metadata_preallocation, computed once: true when at least ~10 % more clusters have a
    /// refcount than the file has allocated blocks for (the image was created with preallocation=metadata). A
    /// refcount that cannot be read ends the probe with "not preallocated", as QEMU ignores the probe's error: the
    /// corruption is reported (QEMU's message) but block status, and so map, convert and compare, go on.
    /// </summary>
    private async ValueTask<bool> IsMetadataPreallocatedAsync(CancellationToken cancellationToken)
    {
        int state = Volatile.Read(ref _preallocationState);
        if (state != 0)
        {
            return state == 2;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_preallocationState == 0)
            {
                bool preallocated = false;
                long allocated = File.GetAllocatedSize();
                if (allocated >= 0)
                {
                    long realClusters = allocated / _header.ClusterSize;
                    long threshold = Math.Max(realClusters * 10 / 9, realClusters + 2);
                    long endCluster = (File.Length + _header.ClusterSize - 1) >> _header.ClusterBits;
                    long count = 0;
                    for (long i = 0; i < endCluster && count < threshold; i++)
                    {
                        if (await _refcounts.GetRefcountAsync(i, cancellationToken).ConfigureAwait(false) != 0)
                        {
                            count++;
                        }
                    }

                    preallocated = count >= threshold;
                }

                Volatile.Write(ref _preallocationState, preallocated ? 2 : 1);
            }

            return _preallocationState == 2;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            if (e is InvalidDataException corruption && Qcow2ThrowHelper.IsCorruption(corruption))
            {
                await SignalCorruptionAsync(corruption).ConfigureAwait(false);
            }

            Volatile.Write(ref _preallocationState, 1);
            return false;
        }
        finally
        {
            _lock.Release();
        }
    }

    // ------------------------------------------------------------ snapshots and zero init

    /// <summary>
    /// QEMU's qcow2_has_zero_init: an image without preallocated metadata reads as zero where it was not written; a
    /// preallocated one only when its data file does (and it is not encrypted).
    /// </summary>
    protected override bool HasZeroInitCore
    {
        get
        {
            bool preallocated = _map.L1Size > 0 && _map.L1Entry(0) != 0;
            return !preallocated || (!IsEncrypted && !_dataFileMissing && _dataFile.HasZeroInit);
        }
    }

    /// <summary>
    /// Shows an internal snapshot instead of the active state (QEMU's qcow2_snapshot_load_tmp): its L1 table becomes the
    /// active one in memory; the virtual size stays. With both <paramref name="id"/> and <paramref name="name"/>, both
    /// must match; otherwise the one given does.
    /// </summary>
    /// <exception cref="InvalidOperationException">The image is writable.</exception>
    /// <exception cref="KeyNotFoundException">No such snapshot ("Can't find snapshot").</exception>
    /// <exception cref="InvalidDataException">The snapshot's L1 table is invalid.</exception>
    public override async ValueTask LoadSnapshotAsync(string? id, string? name, CancellationToken cancellationToken = default)
    {
        ThrowIfFailed();
        if (id is null && name is null)
        {
            throw new ArgumentException("snapshot_id and name are both NULL");
        }

        if (!IsReadOnly)
        {
            throw new InvalidOperationException("Device is not readonly");
        }

        Qcow2Snapshot? snapshot = HasExternalDataFile ? null : _snapshots.Find(s => (id is null || s.Id == id) && (name is null || s.Name == name));
        if (snapshot is null)
        {
            throw new KeyNotFoundException("Can't find snapshot");
        }

        if ((long)snapshot.L1Size * Qcow2Layout.L1EntrySize > Qcow2Layout.MaxL1TableBytes)
        {
            throw new InvalidDataException("Snapshot L1 table too large");
        }

        if ((ulong)long.MaxValue - (ulong)snapshot.L1Size * Qcow2Layout.L1EntrySize < snapshot.L1TableOffset
            || (snapshot.L1TableOffset & (ulong)(_header.ClusterSize - 1)) != 0)
        {
            throw new InvalidDataException("Snapshot L1 table offset invalid");
        }

        byte[] raw = new byte[(long)snapshot.L1Size * Qcow2Layout.L1EntrySize];
        await File.ReadAsync((long)snapshot.L1TableOffset, raw, cancellationToken).ConfigureAwait(false);
        var table = new ulong[snapshot.L1Size];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _map.ReplaceL1(table, (long)snapshot.L1TableOffset);
            Volatile.Write(ref _preallocationState, 0);
        }
        finally
        {
            _lock.Release();
        }
    }

    // ------------------------------------------------------------ info

    /// <summary>
    /// The "format-specific" data of <c>qemu-img info</c>, with its keys in the order QEMU prints them (the order of
    /// its QDict's hash buckets): version 2 images show compat, compression-type and refcount-bits only.
    /// </summary>
    public override FormatSpecificInfo? GetFormatSpecificInfo()
    {
        var data = new InfoObject();
        if (_header.Version == 2)
        {
            data.Add("compat", "0.10");
            data.Add("compression-type", CompressionType);
            data.Add("refcount-bits", (long)_header.RefcountBits);
            if (_encryption is not null)
            {
                data.Add("encrypt", _encryption);
            }

            return new FormatSpecificInfo("qcow2", data);
        }

        data.Add("compat", "1.1");
        data.Add("compression-type", CompressionType);
        data.Add("lazy-refcounts", _header.HasLazyRefcounts);
        if (_bitmaps.Count > 0)
        {
            var list = new InfoList();
            foreach (Qcow2Bitmap bitmap in _bitmaps)
            {
                var flags = new InfoList();
                if ((bitmap.Flags & Qcow2Bitmap.FlagInUse) != 0)
                {
                    flags.Add("in-use");
                }

                if ((bitmap.Flags & Qcow2Bitmap.FlagAuto) != 0)
                {
                    flags.Add("auto");
                }

                list.Add(new InfoObject()
                    .Add("flags", flags)
                    .Add("name", bitmap.Name)
                    .Add("granularity", 1L << bitmap.GranularityBits));
            }

            data.Add("bitmaps", list);
        }

        data.Add("refcount-bits", (long)_header.RefcountBits);
        if (_header.DataFile is not null)
        {
            data.Add("data-file", _header.DataFile);
        }

        if (_encryption is not null)
        {
            data.Add("encrypt", _encryption);
        }

        if (HasExternalDataFile)
        {
            data.Add("data-file-raw", _header.IsDataFileRaw);
        }

        data.Add("corrupt", _header.IsCorrupt);
        data.Add("extended-l2", _header.HasSubclusters);
        return new FormatSpecificInfo("qcow2", data);
    }

    // ------------------------------------------------------------ corruption

    private void ThrowIfDataFileMissing()
    {
        if (IsEncrypted)
        {
            throw new NotSupportedException("Encrypted qcow2 images are not supported by qimg (only 'info' can read them)");
        }

        if (_dataFileMissing)
        {
            throw new InvalidOperationException($"'{FileName}' was opened for metadata only; its data file is not open");
        }
    }

    private void ThrowIfFailed()
    {
        ThrowIfDisposed();
        if (_failed)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
        }
    }

    /// <summary>
    /// QEMU's qcow2_signal_corruption: reports the first corruption (later ones are suppressed); on a writable image a
    /// fatal one sets the corrupt bit and makes the image refuse further requests.
    /// </summary>
    private async ValueTask SignalCorruptionAsync(InvalidDataException e)
    {
        bool fatal = Qcow2ThrowHelper.IsFatal(e) && !IsReadOnly;
        if (_signaledCorruption && (!fatal || _header.IsCorrupt))
        {
            return;
        }

        Report(fatal, e.Message);
        if (fatal)
        {
            _failed = true;
            _header.IncompatibleFeatures |= Qcow2Layout.IncompatCorrupt;
            try
            {
                await WriteHeaderAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The image is unusable either way.
            }
        }
    }

    private void Report(bool fatal, string message)
    {
        if (_signaledCorruption && !fatal)
        {
            return;
        }

        _signaledCorruption = true;
        _message?.Invoke(fatal
            ? $"qcow2: Marking image as corrupt: {message}; further corruption events will be suppressed"
            : $"qcow2: Image is corrupt: {message}; further non-fatal corruption events will be suppressed");
    }

    // ------------------------------------------------------------ header

    /// <summary>Rewrites the first cluster from the in-memory header (QEMU's qcow2_update_header).</summary>
    private async ValueTask WriteHeaderAsync(CancellationToken cancellationToken)
    {
        byte[] cluster = new byte[_header.ClusterSize];
        _header.WriteTo(cluster, HasExternalDataFile);
        await File.WriteAsync(0, cluster, WriteFlags.None, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes one 8-byte header field and makes it durable.</summary>
    private async ValueTask WriteHeaderFieldAsync(int fieldOffset, ulong value, CancellationToken cancellationToken)
    {
        byte[] raw = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(raw, value);
        await File.WriteAsync(fieldOffset, raw, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        await FlushFileAsync(cancellationToken).ConfigureAwait(false);
    }

    private ValueTask FlushFileAsync(CancellationToken cancellationToken) =>
        _flushFile && !IsReadOnly ? File.FlushAsync(cancellationToken) : default;

    // ------------------------------------------------------------ lifetime

    protected override async ValueTask DisposeCoreAsync()
    {
        try
        {
            if (!IsReadOnly && !_failed)
            {
                await CloseCleanlyAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            if (_ownsDataFile)
            {
                await _dataFile.DisposeAsync().ConfigureAwait(false);
            }

            _lock.Dispose();
            await base.DisposeCoreAsync().ConfigureAwait(false);
        }
    }
}
