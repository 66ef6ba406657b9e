using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>What a metadata write made by the check must not overlap besides the tables QEMU always protects.</summary>
internal enum Qcow2CheckOverlap
{
    /// <summary>Nothing is exempt.</summary>
    None,

    /// <summary>The write goes to an active L2 table (those are exempt).</summary>
    ActiveL2,
}

public sealed partial class Qcow2Image
{
    /// <summary>The incompatible features before the current repair started writing (null when no repair is writing).</summary>
    private ulong? _featuresBeforeRepair;

    /// <summary>The snapshot table's size on disk as the check found it (null: the size of the entries in the list).</summary>
    private long? _snapshotTableBytes;

    public override bool SupportsCheck => true;

    /// <summary>
    /// Checks the image (QEMU's qcow2_co_check): see <see cref="Qcow2Check"/>. Repairs need the image open for writing
    /// (normally with <see cref="ImageOpenOptions.Check"/>, as <c>qemu-img check -r</c> opens it).
    /// </summary>
    /// <exception cref="InvalidOperationException">A repair was asked for on a read-only image.</exception>
    /// <exception cref="IOException">The check could not complete (message: the strerror text of the failure).</exception>
    public override async ValueTask<CheckResult> CheckAsync(RepairMode repair, Action<CheckMessage>? report, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (repair != RepairMode.None && IsReadOnly)
        {
            throw new InvalidOperationException("A read-only image cannot be repaired");
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await new Qcow2Check(this, report).RunAsync(repair, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Repairs an image left dirty (by lazy refcounts, or by a repair that was interrupted) when it is opened for writing,
    /// as QEMU does: the full check with <see cref="RepairMode.All"/>, its report going to <paramref name="report"/> (or,
    /// without one, to the verbatim message sink, since QEMU prints it on stderr).
    /// </summary>
    /// <exception cref="IOException">"Could not repair dirty image: …" when the check fails or cannot look at everything.</exception>
    private async ValueTask RepairDirtyAsync(Action<CheckMessage>? report, CancellationToken cancellationToken)
    {
        report ??= message => _message?.Invoke(message.Text);
        CheckResult result;
        try
        {
            result = await CheckAsync(RepairMode.All, report, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new IOException("Could not repair dirty image: " + Diagnostics.ErrorText.Describe(e), e);
        }

        if (result.CheckErrors != 0)
        {
            throw new IOException("Could not repair dirty image: " + Diagnostics.ErrorText.Describe(Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO)));
        }
    }

    // ------------------------------------------------------------ what the check works on

    internal Qcow2Header CheckHeader => _header;

    internal Qcow2Refcounts CheckRefcounts => _refcounts;

    internal Qcow2ClusterMap CheckMap => _map;

    /// <summary>The snapshot list the image uses; the check replaces its contents with the table it read.</summary>
    internal List<Qcow2Snapshot> CheckSnapshots => _snapshots;

    /// <summary>
    /// Bytes the snapshot table spans on disk as the check read it (QEMU's snapshots_size), which the overlap check
    /// protects; entries whose extra data the check cut are longer on disk than in the list.
    /// </summary>
    internal void SetSnapshotTableForCheck(long offset, long size)
    {
        _header.SnapshotsOffset = (ulong)offset;
        _snapshotTableBytes = size;
    }

    /// <summary>Writes both metadata caches back (the check reads metadata from the file).</summary>
    internal async ValueTask WriteCachesForCheckAsync(CancellationToken cancellationToken)
    {
        // An image the check marked corrupt writes nothing more (QEMU makes it unusable).
        if (IsReadOnly || _failed)
        {
            return;
        }

        await _map.L2Cache.FlushAsync(cancellationToken).ConfigureAwait(false);
        await _refcounts.BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>QEMU's bdrv_flush during a repair: both caches, then the file.</summary>
    internal async ValueTask FlushForCheckAsync(CancellationToken cancellationToken)
    {
        await WriteCachesForCheckAsync(cancellationToken).ConfigureAwait(false);
        await FlushFileAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Called before the first write of a repair: a version 3 image gets the dirty bit on disk (made durable first), so
    /// that an interrupted repair is finished by the repair of the next writable open. The in-memory header keeps its
    /// state; <see cref="EndRepairAsync"/> writes it back.
    /// </summary>
    internal async ValueTask BeginRepairAsync(CancellationToken cancellationToken)
    {
        if (_featuresBeforeRepair is not null || IsReadOnly)
        {
            return;
        }

        _featuresBeforeRepair = _header.IncompatibleFeatures;
        if (_header.Version >= 3 && !_header.IsDirty)
        {
            await WriteHeaderFieldAsync(Qcow2Layout.IncompatibleFeaturesOffset, _header.IncompatibleFeatures | Qcow2Layout.IncompatDirty, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>After a check: when a repair wrote anything, the caches are written and the header's features restored.</summary>
    internal async ValueTask EndRepairAsync(CancellationToken cancellationToken)
    {
        if (_featuresBeforeRepair is null)
        {
            return;
        }

        _featuresBeforeRepair = null;
        await FlushForCheckAsync(cancellationToken).ConfigureAwait(false);
        if (_header.Version >= 3)
        {
            try
            {
                await WriteHeaderFieldAsync(Qcow2Layout.IncompatibleFeaturesOffset, _header.IncompatibleFeatures, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException) when (_failed)
            {
                // The image is marked corrupt already; the repair that was interrupted is reported by the check.
            }
        }
    }

    /// <summary>QEMU's qcow2_mark_clean and qcow2_mark_consistent after a repair that left nothing broken.</summary>
    internal async ValueTask MarkCleanAndConsistentAsync(CancellationToken cancellationToken)
    {
        ulong cleared = _header.IncompatibleFeatures & ~(Qcow2Layout.IncompatDirty | Qcow2Layout.IncompatCorrupt);
        if (cleared == _header.IncompatibleFeatures)
        {
            return;
        }

        await FlushForCheckAsync(cancellationToken).ConfigureAwait(false);
        _header.IncompatibleFeatures = cleared;
        await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
        await FlushFileAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes metadata bytes straight to the file and drops cached copies of the tables they touch.</summary>
    internal async ValueTask WriteMetadataAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await File.WriteAsync(offset, data, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        long clusterSize = _header.ClusterSize;
        for (long cluster = offset & ~(clusterSize - 1); cluster < offset + data.Length; cluster += clusterSize)
        {
            if (_map.L2Cache.Find(cluster) is Qcow2CachedTable l2)
            {
                Qcow2MetadataCache.Discard(l2);
            }

            if (_refcounts.BlockCache.Find(cluster) is Qcow2CachedTable block)
            {
                Qcow2MetadataCache.Discard(block);
            }
        }
    }

    /// <summary><see cref="WriteMetadataAsync"/>, then a flush of the file (QEMU's bdrv_pwrite_sync).</summary>
    internal async ValueTask WriteMetadataSyncAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await WriteMetadataAsync(offset, data, cancellationToken).ConfigureAwait(false);
        await FlushFileAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// QEMU's pre-write overlap check for a write the check makes: when the range overlaps metadata, the corruption is
    /// signalled (the image is marked corrupt) and true is returned.
    /// </summary>
    internal async ValueTask<bool> CheckOverlapForCheckAsync(long offset, long size, Qcow2CheckOverlap ignore, Action<CheckMessage>? report)
    {
        string? hit = size <= 0 ? null : FindOverlap(offset, size, ignore == Qcow2CheckOverlap.ActiveL2 ? Overlap.ActiveL2 : Overlap.None);
        if (hit is null)
        {
            return false;
        }

        await SignalCorruptionForCheckAsync($"Preventing invalid write on metadata (overlaps with {hit})", report).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// QEMU's qcow2_signal_corruption during a check: the report line goes to the check's report (QEMU prints it on
    /// stderr), and an image open for writing gets the corrupt bit. Later corruptions are not reported again.
    /// </summary>
    internal async ValueTask SignalCorruptionForCheckAsync(string message, Action<CheckMessage>? report)
    {
        bool fatal = !IsReadOnly;
        if (_signaledCorruption && (!fatal || _header.IsCorrupt))
        {
            return;
        }

        report?.Invoke(new CheckMessage(fatal
            ? $"qcow2: Marking image as corrupt: {message}; further corruption events will be suppressed"
            : $"qcow2: Image is corrupt: {message}; further non-fatal corruption events will be suppressed"));
        _signaledCorruption = true;
        if (fatal)
        {
            // Nothing cached is written any more: what is in the caches may be what the corruption would spread.
            _failed = true;
        }

        if (fatal && _header.Version >= 3)
        {
            _header.IncompatibleFeatures |= Qcow2Layout.IncompatCorrupt;
            try
            {
                byte[] raw = new byte[8];
                BinaryPrimitives.WriteUInt64BigEndian(raw, _header.IncompatibleFeatures | (_featuresBeforeRepair is null ? 0 : Qcow2Layout.IncompatDirty));
                await File.WriteAsync(Qcow2Layout.IncompatibleFeaturesOffset, raw, WriteFlags.None, CancellationToken.None).ConfigureAwait(false);
                await FlushFileAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The check goes on either way.
            }
        }
    }
}
