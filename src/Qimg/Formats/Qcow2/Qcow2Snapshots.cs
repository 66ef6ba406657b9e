using System.Buffers.Binary;
using System.Text;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>One entry of the internal snapshot table (QEMU's QCowSnapshot).</summary>
internal sealed record Qcow2Snapshot(
    ulong L1TableOffset,
    uint L1Size,
    string Id,
    string Name,
    ulong DiskSize,
    ulong VmStateSize,
    uint DateSeconds,
    uint DateNanoseconds,
    ulong VmClockNanoseconds,
    ulong InstructionCount,
    uint ExtraDataSize,
    long EntrySize)
{
    /// <summary>Extra data past the fields QEMU knows (kept so that rewriting the table preserves it).</summary>
    public byte[] UnknownExtraData { get; init; } = [];
}

/// <summary>A snapshot table as read for a check (QEMU's qcow2_do_read_snapshots in repair mode).</summary>
/// <param name="Snapshots">The entries that were kept.</param>
/// <param name="Size">Bytes from the table start to the end of the last kept entry on disk (QEMU's snapshots_size).</param>
/// <param name="Reduced">Entries dropped from the end because the table is too big.</param>
/// <param name="ExtraDataDropped">Entries whose extra data was cut to QEMU's limit.</param>
internal sealed record Qcow2SnapshotTable(List<Qcow2Snapshot> Snapshots, long Size, long Reduced, int ExtraDataDropped);

/// <summary>Reads the internal snapshot table (QEMU's qcow2_read_snapshots) for <c>info</c>, <c>snapshot -l</c> and the check.</summary>
internal static class Qcow2Snapshots
{
    /// <summary>QEMU copies IDs into 128-byte and names into 256-byte buffers when listing.</summary>
    private const int MaxListedIdBytes = 127;
    private const int MaxListedNameBytes = 255;

    /// <summary>
    /// Reads and validates the snapshot table the header describes. Entry count and offset were validated with the
    /// header; here every entry's extra data is limited to 1 KiB and the whole table to QEMU's 64 MiB.
    /// </summary>
    /// <param name="virtualSize">The image size, reported for snapshots that do not record their own.</param>
    /// <exception cref="InvalidDataException">The table is malformed (QEMU's message and hint).</exception>
    public static async ValueTask<List<Qcow2Snapshot>> ReadAsync(BlockNode file, Qcow2Header header, long virtualSize, CancellationToken cancellationToken) =>
        (await ReadTableAsync(file, header.SnapshotCount, (long)header.SnapshotsOffset, virtualSize, false, null, cancellationToken).ConfigureAwait(false)).Snapshots;

    /// <summary>
    /// Reads <paramref name="count"/> entries at <paramref name="tableStart"/>. With <paramref name="repair"/> (QEMU's
    /// check -r all), extra data beyond 1 KiB is cut and entries past the 64 MiB limit are dropped, each reported through
    /// <paramref name="report"/>, instead of failing.
    /// </summary>
    /// <exception cref="InvalidDataException">The table is malformed and <paramref name="repair"/> is off (QEMU's message and hint).</exception>
    public static async ValueTask<Qcow2SnapshotTable> ReadTableAsync(BlockNode file, uint count, long tableStart, long virtualSize, bool repair, Action<string>? report, CancellationToken cancellationToken)
    {
        var snapshots = new List<Qcow2Snapshot>((int)Math.Min(count, 1024));
        if (count == 0)
        {
            return new Qcow2SnapshotTable(snapshots, 0, 0, 0);
        }

        long offset = tableStart;
        long tableLength = 0;
        long reduced = 0;
        int extraDropped = 0;
        byte[] fixedPart = new byte[Qcow2Layout.SnapshotHeaderSize];
        for (int i = 0; i < count; i++)
        {
            long entryStart = offset;
            tableLength = (tableLength + 7) & ~7L;
            offset = (offset + 7) & ~7L;
            await file.ReadAsync(offset, fixedPart, cancellationToken).ConfigureAwait(false);
            offset += Qcow2Layout.SnapshotHeaderSize;
            ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(fixedPart);
            uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(8));
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(12));
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14));
            uint dateSeconds = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(16));
            uint dateNanoseconds = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(20));
            ulong vmClock = BinaryPrimitives.ReadUInt64BigEndian(fixedPart.AsSpan(24));
            ulong vmStateSize = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(32));
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(36));
            uint keptExtraSize = extraSize;
            if (extraSize > Qcow2Layout.MaxSnapshotExtraData)
            {
                if (!repair)
                {
                    throw new InvalidDataException($"Too much extra metadata in snapshot table entry {i}\nYou can force-remove this extra metadata with qemu-img check -r all");
                }

                report?.Invoke($"Discarding too much extra metadata in snapshot table entry {i} ({extraSize} > {Qcow2Layout.MaxSnapshotExtraData})");
                extraDropped++;
                keptExtraSize = Qcow2Layout.MaxSnapshotExtraData;
            }

            // The extra data that is kept, then ID and name (at most 1 KiB + 2 * 64 KiB); extra data beyond the limit is
            // skipped, not read.
            byte[] extra = new byte[keptExtraSize];
            byte[] strings = new byte[idSize + nameSize];
            if (keptExtraSize == extraSize)
            {
                byte[] rest = new byte[extraSize + idSize + nameSize];
                await file.ReadAsync(offset, rest, cancellationToken).ConfigureAwait(false);
                rest.AsSpan(0, (int)extraSize).CopyTo(extra);
                rest.AsSpan((int)extraSize).CopyTo(strings);
            }
            else
            {
                await file.ReadAsync(offset, extra, cancellationToken).ConfigureAwait(false);
                await file.ReadAsync(offset + extraSize, strings, cancellationToken).ConfigureAwait(false);
            }

            offset += extraSize + idSize + nameSize;
            ReadOnlySpan<byte> known = extra.AsSpan(0, (int)Math.Min(extra.Length, Qcow2Layout.SnapshotExtraDataSize));
            if (known.Length >= 8)
            {
                vmStateSize = BinaryPrimitives.ReadUInt64BigEndian(known);
            }

            ulong diskSize = known.Length >= 16 ? BinaryPrimitives.ReadUInt64BigEndian(known[8..]) : (ulong)virtualSize;
            ulong icount = known.Length >= 24 ? BinaryPrimitives.ReadUInt64BigEndian(known[16..]) : ulong.MaxValue;
            string id = CString(strings.AsSpan(0, idSize), int.MaxValue);
            string name = CString(strings.AsSpan(idSize, nameSize), int.MaxValue);

            // The length counts the extra data that is kept (QEMU's table_length; the table is rewritten with it).
            tableLength += Qcow2Layout.SnapshotHeaderSize + keptExtraSize + idSize + nameSize;
            if (tableLength > Qcow2Layout.MaxSnapshotTableBytes || offset - tableStart > int.MaxValue)
            {
                if (!repair)
                {
                    throw new InvalidDataException($"Snapshot table is too big\nYou can force-remove all {count - i} overhanging snapshots with qemu-img check -r all");
                }

                report?.Invoke($"Discarding {count - i} overhanging snapshots (snapshot table is too big)");
                reduced += count - i;
                offset = entryStart;
                break;
            }

            byte[] unknown = extra.Length > Qcow2Layout.SnapshotExtraDataSize ? extra[Qcow2Layout.SnapshotExtraDataSize..] : [];
            snapshots.Add(new Qcow2Snapshot(l1Offset, l1Size, id, name, diskSize, vmStateSize, dateSeconds, dateNanoseconds, vmClock, icount, keptExtraSize, Qcow2Layout.SnapshotHeaderSize + keptExtraSize + idSize + nameSize)
            {
                UnknownExtraData = unknown,
            });
        }

        return new Qcow2SnapshotTable(snapshots, offset - tableStart, reduced, extraDropped);
    }

    /// <summary>Bytes the table occupies (entries start at multiples of 8).</summary>
    public static long TableSize(List<Qcow2Snapshot> snapshots)
    {
        long size = 0;
        foreach (Qcow2Snapshot snapshot in snapshots)
        {
            size = ((size + 7) & ~7L) + snapshot.EntrySize;
        }

        return size;
    }

    /// <summary>The public view of a snapshot for <c>info</c>.</summary>
    public static SnapshotInfo ToInfo(Qcow2Snapshot snapshot) => new(
        Truncate(snapshot.Id, MaxListedIdBytes),
        Truncate(snapshot.Name, MaxListedNameBytes),
        snapshot.VmStateSize,
        snapshot.DateSeconds,
        snapshot.DateNanoseconds,
        snapshot.VmClockNanoseconds,
        snapshot.InstructionCount == ulong.MaxValue ? null : snapshot.InstructionCount,
        snapshot.DiskSize);

    /// <summary>What QEMU's fixed-size listing buffers keep of a string (its first bytes).</summary>
    private static string Truncate(string text, int maxBytes)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        return bytes.Length <= maxBytes ? text : Encoding.UTF8.GetString(bytes, 0, maxBytes);
    }

    /// <summary>A C string (up to the first NUL), cut to <paramref name="maxBytes"/>.</summary>
    private static string CString(ReadOnlySpan<byte> bytes, int maxBytes)
    {
        int nul = bytes.IndexOf((byte)0);
        if (nul >= 0)
        {
            bytes = bytes[..nul];
        }

        return Encoding.UTF8.GetString(bytes.Length > maxBytes ? bytes[..maxBytes] : bytes);
    }
}
