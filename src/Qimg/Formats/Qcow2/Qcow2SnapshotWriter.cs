using System.Buffers.Binary;
using System.Text;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Lays out a snapshot table as QEMU's qcow2_write_snapshots does: entries at multiples of 8, each with the fixed part,
/// at least the 24 bytes of extra data QEMU knows (then any unknown extra data kept from reading), the ID and the name.
/// </summary>
internal static class Qcow2SnapshotWriter
{
    /// <summary>The bytes of each entry and where it starts in the table; <paramref name="size"/> is the table's length.</summary>
    /// <exception cref="IOException">The table would exceed QEMU's 64 MiB limit (EFBIG).</exception>
    public static List<(long Offset, byte[] Bytes)> Serialize(IReadOnlyList<Qcow2Snapshot> snapshots, out long size)
    {
        var entries = new List<(long, byte[])>(snapshots.Count);
        long offset = 0;
        foreach (Qcow2Snapshot snapshot in snapshots)
        {
            byte[] id = Encoding.UTF8.GetBytes(snapshot.Id);
            byte[] name = Encoding.UTF8.GetBytes(snapshot.Name);
            int extraSize = Qcow2Layout.SnapshotExtraDataSize + snapshot.UnknownExtraData.Length;
            offset = (offset + 7) & ~7L;
            byte[] entry = new byte[Qcow2Layout.SnapshotHeaderSize + extraSize + id.Length + name.Length];
            Span<byte> h = entry;
            BinaryPrimitives.WriteUInt64BigEndian(h, snapshot.L1TableOffset);
            BinaryPrimitives.WriteUInt32BigEndian(h[8..], snapshot.L1Size);
            BinaryPrimitives.WriteUInt16BigEndian(h[12..], (ushort)id.Length);
            BinaryPrimitives.WriteUInt16BigEndian(h[14..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt32BigEndian(h[16..], snapshot.DateSeconds);
            BinaryPrimitives.WriteUInt32BigEndian(h[20..], snapshot.DateNanoseconds);
            BinaryPrimitives.WriteUInt64BigEndian(h[24..], snapshot.VmClockNanoseconds);

            // A VM state too large for the old 32-bit field makes older readers see a disk-only snapshot.
            BinaryPrimitives.WriteUInt32BigEndian(h[32..], snapshot.VmStateSize <= uint.MaxValue ? (uint)snapshot.VmStateSize : 0);
            BinaryPrimitives.WriteUInt32BigEndian(h[36..], (uint)extraSize);
            Span<byte> extra = h[Qcow2Layout.SnapshotHeaderSize..];
            BinaryPrimitives.WriteUInt64BigEndian(extra, snapshot.VmStateSize);
            BinaryPrimitives.WriteUInt64BigEndian(extra[8..], snapshot.DiskSize);
            BinaryPrimitives.WriteUInt64BigEndian(extra[16..], snapshot.InstructionCount);
            snapshot.UnknownExtraData.CopyTo(extra[Qcow2Layout.SnapshotExtraDataSize..]);
            id.CopyTo(extra[extraSize..]);
            name.CopyTo(extra[(extraSize + id.Length)..]);
            entries.Add((offset, entry));
            offset += entry.Length;
            if (offset > Qcow2Layout.MaxSnapshotTableBytes)
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EFBIG);
            }
        }

        size = offset;
        return entries;
    }
}
