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
    long EntrySize);

/// <summary>Reads the internal snapshot table (QEMU's qcow2_read_snapshots) for <c>info</c> and <c>snapshot -l</c>.</summary>
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
    public static async ValueTask<List<Qcow2Snapshot>> ReadAsync(BlockNode file, Qcow2Header header, long virtualSize, CancellationToken cancellationToken)
    {
        var snapshots = new List<Qcow2Snapshot>((int)Math.Min(header.SnapshotCount, 1024));
        if (header.SnapshotCount == 0)
        {
            return snapshots;
        }

        long tableStart = (long)header.SnapshotsOffset;
        long offset = tableStart;
        long tableLength = 0;
        byte[] fixedPart = new byte[Qcow2Layout.SnapshotHeaderSize];
        for (int i = 0; i < header.SnapshotCount; i++)
        {
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
            if (extraSize > Qcow2Layout.MaxSnapshotExtraData)
            {
                throw new InvalidDataException($"Too much extra metadata in snapshot table entry {i}\nYou can force-remove this extra metadata with qemu-img check -r all");
            }

            // Extra data, ID and name in one read: at most 1 KiB + 2 * 64 KiB.
            byte[] rest = new byte[extraSize + idSize + nameSize];
            await file.ReadAsync(offset, rest, cancellationToken).ConfigureAwait(false);
            offset += rest.Length;
            ReadOnlySpan<byte> extra = rest.AsSpan(0, (int)extraSize);
            if (extra.Length >= 8)
            {
                vmStateSize = BinaryPrimitives.ReadUInt64BigEndian(extra);
            }

            ulong diskSize = extra.Length >= 16 ? BinaryPrimitives.ReadUInt64BigEndian(extra[8..]) : (ulong)virtualSize;
            ulong icount = extra.Length >= 24 ? BinaryPrimitives.ReadUInt64BigEndian(extra[16..]) : ulong.MaxValue;
            string id = CString(rest.AsSpan((int)extraSize, idSize), int.MaxValue);
            string name = CString(rest.AsSpan((int)extraSize + idSize, nameSize), int.MaxValue);

            tableLength += Qcow2Layout.SnapshotHeaderSize + extraSize + idSize + nameSize;
            if (tableLength > Qcow2Layout.MaxSnapshotTableBytes || offset - tableStart > int.MaxValue)
            {
                throw new InvalidDataException($"Snapshot table is too big\nYou can force-remove all {header.SnapshotCount - i} overhanging snapshots with qemu-img check -r all");
            }

            snapshots.Add(new Qcow2Snapshot(l1Offset, l1Size, id, name, diskSize, vmStateSize, dateSeconds, dateNanoseconds, vmClock, icount, extraSize, Qcow2Layout.SnapshotHeaderSize + extraSize + idSize + nameSize));
        }

        return snapshots;
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
