using System.Buffers.Binary;

namespace Qimg.Formats.Qcow2;

internal sealed partial class Qcow2Check
{
    /// <summary>
    /// QEMU's qcow2_check_read_snapshot_table: reads the snapshot table the header points to (an image opened for a check
    /// has not read it). With <see cref="RepairMode.Errors"/>, a table with too many entries or too much data is cut
    /// down (and the header's snapshot count updated at once); extra data beyond 1 KiB is cut later, when the table is
    /// rewritten. Version 3 entries must carry at least the virtual disk size in their extra data.
    /// </summary>
    private async ValueTask CheckReadSnapshotTableAsync(CheckResult result, RepairMode fix, CancellationToken cancellationToken)
    {
        bool repair = (fix & RepairMode.Errors) != 0;
        byte[] pointer = new byte[12];
        try
        {
            await _file.ReadAsync(Qcow2Layout.SnapshotCountOffset, pointer, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            result.CheckErrors++;
            Report($"ERROR failed to read the snapshot table pointer from the image header: {Strerror(e)}");
            throw AsErrno(e);
        }

        uint count = BinaryPrimitives.ReadUInt32BigEndian(pointer);
        ulong offset = BinaryPrimitives.ReadUInt64BigEndian(pointer.AsSpan(4));
        long reduced = 0;
        if (count > Qcow2Layout.MaxSnapshots && repair)
        {
            Report($"Discarding {count - Qcow2Layout.MaxSnapshots} overhanging snapshots");
            reduced += count - Qcow2Layout.MaxSnapshots;
            count = Qcow2Layout.MaxSnapshots;
        }

        // QEMU's qcow2_validate_table, with the check's lower-case table name.
        string? invalid = null;
        int errno = 0;
        if (count > Qcow2Layout.MaxSnapshots)
        {
            (invalid, errno) = ("snapshot table too large", Qcow2ThrowHelper.EFBIG);
        }
        else if ((ulong)long.MaxValue - (ulong)count * Qcow2Layout.SnapshotHeaderSize < offset || (offset & (ulong)(_clusterSize - 1)) != 0)
        {
            (invalid, errno) = ("snapshot table offset invalid", Qcow2ThrowHelper.EINVAL);
        }

        if (invalid is not null)
        {
            result.CheckErrors++;
            ReportError("ERROR " + invalid);
            if (count > Qcow2Layout.MaxSnapshots)
            {
                Report($"You can force-remove all {count - Qcow2Layout.MaxSnapshots} overhanging snapshots with qemu-img check -r all");
            }

            SetSnapshots([], 0, 0);
            throw Qcow2ThrowHelper.Errno(errno);
        }

        Qcow2SnapshotTable table;
        try
        {
            table = await Qcow2Snapshots.ReadTableAsync(_file, count, (long)offset, _image.Length, repair, Report, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException e)
        {
            result.CheckErrors++;
            ReportError("ERROR failed to read the snapshot table: " + e.Message);
            SetSnapshots([], 0, 0);
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
        }
        catch (IOException e)
        {
            result.CheckErrors++;
            ReportError("ERROR failed to read the snapshot table: Failed to read snapshot table: " + Strerror(e));
            SetSnapshots([], 0, 0);
            throw AsErrno(e);
        }

        SetSnapshots(table.Snapshots, (long)offset, table.Size);
        reduced += table.Reduced;
        result.Corruptions += reduced + table.ExtraDataDropped;
        if (reduced != 0)
        {
            // The header must say how many entries are left before the refcounts are checked (the dropped entries and
            // their clusters are then leaks the check frees).
            await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
            byte[] raw = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(raw, (uint)table.Snapshots.Count);
            try
            {
                await _image.WriteMetadataSyncAsync(Qcow2Layout.SnapshotCountOffset, raw, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                result.CheckErrors++;
                Report($"ERROR failed to update the snapshot count in the image header: {Strerror(e)}");
                throw AsErrno(e);
            }

            _header.SnapshotCount = (uint)table.Snapshots.Count;
            result.CorruptionsFixed += reduced;
            result.Corruptions -= reduced;
        }

        if (_header.Version >= 3)
        {
            for (int i = 0; i < table.Snapshots.Count; i++)
            {
                // vm_state_size_large and disk_size.
                if (table.Snapshots[i].ExtraDataSize < 16)
                {
                    result.Corruptions++;
                    Report($"{(repair ? "Repairing" : "ERROR")} snapshot table entry {i} is incomplete");
                }
            }
        }
    }

    /// <summary>
    /// QEMU's qcow2_check_fix_snapshot_table: with <see cref="RepairMode.Errors"/>, a snapshot table found broken is
    /// written anew (complete extra data, extra data cut to 1 KiB), after the refcounts were made right.
    /// </summary>
    private async ValueTask CheckFixSnapshotTableAsync(CheckResult result, RepairMode fix, CancellationToken cancellationToken)
    {
        if (result.Corruptions == 0 || (fix & RepairMode.Errors) == 0)
        {
            return;
        }

        try
        {
            await WriteSnapshotTableAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            result.CheckErrors++;
            Report($"ERROR failed to update snapshot table: {Strerror(e)}");
            throw AsErrno(e);
        }

        result.CorruptionsFixed += result.Corruptions;
        result.Corruptions = 0;
    }

    /// <summary>
    /// Writes the snapshot table to newly allocated clusters and switches the header to it (QEMU's qcow2_write_snapshots):
    /// the new table and its refcounts are durable before the header points to it; the old table is freed afterwards.
    /// </summary>
    private async ValueTask WriteSnapshotTableAsync(CancellationToken cancellationToken)
    {
        await _image.BeginRepairAsync(cancellationToken).ConfigureAwait(false);
        List<(long Offset, byte[] Bytes)> entries = Qcow2SnapshotWriter.Serialize(Snapshots, out long size);
        long tableOffset = await _refcounts.AllocateClustersAsync(size, cancellationToken).ConfigureAwait(false);
        bool switched = false;
        try
        {
            // The header does not point to the new clusters yet, so they must not hold any metadata.
            if (await _image.CheckOverlapForCheckAsync(tableOffset, size, Qcow2CheckOverlap.None, _report).ConfigureAwait(false))
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
            }

            // The table is written before its refcounts are made durable (QEMU flushes the refcounts first): a crash in
            // between then leaves a leak inside the file, which a check finds, rather than one past its end, which it
            // cannot see.
            foreach ((long entryOffset, byte[] bytes) in entries)
            {
                await _image.WriteMetadataAsync(tableOffset + entryOffset, bytes, cancellationToken).ConfigureAwait(false);
            }

            await _image.FlushForCheckAsync(cancellationToken).ConfigureAwait(false);
            byte[] pointer = new byte[12];
            BinaryPrimitives.WriteUInt32BigEndian(pointer, (uint)Snapshots.Count);
            BinaryPrimitives.WriteUInt64BigEndian(pointer.AsSpan(4), (ulong)tableOffset);
            await _image.WriteMetadataSyncAsync(Qcow2Layout.SnapshotCountOffset, pointer, cancellationToken).ConfigureAwait(false);
            switched = true;
        }
        finally
        {
            if (!switched)
            {
                await _refcounts.FreeClustersAsync(tableOffset, size, Qcow2DiscardType.Always, cancellationToken).ConfigureAwait(false);
            }
        }

        await _refcounts.FreeClustersAsync(_snapshotsOffset, _snapshotsSize, Qcow2DiscardType.Snapshot, cancellationToken).ConfigureAwait(false);
        _header.SnapshotCount = (uint)Snapshots.Count;
        _header.SnapshotsOffset = (ulong)tableOffset;
        _snapshotsOffset = tableOffset;
        _snapshotsSize = size;
        _image.SetSnapshotTableForCheck(tableOffset, size);
        for (int i = 0; i < Snapshots.Count; i++)
        {
            // The table now holds the known extra data of every entry.
            Qcow2Snapshot snapshot = Snapshots[i];
            uint extraSize = Math.Max(Qcow2Layout.SnapshotExtraDataSize, snapshot.ExtraDataSize);
            Snapshots[i] = snapshot with { ExtraDataSize = extraSize, EntrySize = snapshot.EntrySize - snapshot.ExtraDataSize + extraSize };
        }
    }

    private void SetSnapshots(List<Qcow2Snapshot> snapshots, long offset, long size)
    {
        List<Qcow2Snapshot> list = Snapshots;
        if (!ReferenceEquals(list, snapshots))
        {
            list.Clear();
            list.AddRange(snapshots);
        }

        _snapshotsOffset = offset;
        _snapshotsSize = size;
        _image.SetSnapshotTableForCheck(offset, size);
    }
}
