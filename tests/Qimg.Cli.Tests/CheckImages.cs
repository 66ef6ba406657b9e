using System.Buffers.Binary;
using Qimg.Cli.Tests.Infrastructure;
using Qimg.Formats.Qcow2;

namespace Qimg.Cli.Tests;

/// <summary>
/// Images for the check tests: clean images of every kind qemu-img makes (plain, compressed with zlib and zstd, with
/// snapshots, with bitmaps, versions 2 and 3, every refcount width, subclusters, external data file, backing file,
/// preallocated zero clusters, small clusters) and copies of a plain image corrupted byte by byte in the ways the check
/// must find (leaked cluster, refcount too high, refcount 0 on a used cluster, L2 and L1 entries past the end of the file,
/// an L2 entry on the refcount table, unaligned entries, wrong copied flags, reserved bits, a missing refcount table
/// entry, a refcount block past the end, a dirty image with lazy refcounts, a snapshot table with an incomplete entry).
/// </summary>
public sealed class CheckImages : ImageSet
{
    public CheckImages()
    {
        Create("-f", "qcow2", "{dir}/plain.qcow2", "64M");
        Io("plain.qcow2", "qcow2", "write -P 1 0 256k", "write -P 2 10M 64k", "write -P 3 40M 64k");

        Create("-f", "qcow2", "-o", "compat=0.10", "{dir}/v2.qcow2", "64M");
        Io("v2.qcow2", "qcow2", "write -P 1 0 1M", "write -P 2 30M 64k");
        QemuImg("snapshot", "-c", "s1", "{dir}/v2.qcow2");
        Io("v2.qcow2", "qcow2", "write -P 3 0 64k");

        QemuImg("convert", "-c", "-O", "qcow2", "{dir}/plain.qcow2", "{dir}/compressed.qcow2");
        Create("-f", "qcow2", "-o", "compression_type=zstd,cluster_size=4k", "{dir}/zstd.qcow2", "16M");
        Io("zstd.qcow2", "qcow2", "write -c -P 1 0 64k", "write -P 2 1M 64k", "write -c -P 3 2M 4k");

        Create("-f", "qcow2", "{dir}/snapshots.qcow2", "64M");
        Io("snapshots.qcow2", "qcow2", "write -P 1 0 256k", "write -P 2 10M 64k");
        QemuImg("snapshot", "-c", "first", "{dir}/snapshots.qcow2");
        Io("snapshots.qcow2", "qcow2", "write -P 7 0 64k", "write -P 8 1M 64k");
        QemuImg("snapshot", "-c", "second", "{dir}/snapshots.qcow2");
        Io("snapshots.qcow2", "qcow2", "write -P 9 0 128k");

        Create("-f", "qcow2", "{dir}/bitmaps.qcow2", "64M");
        Io("bitmaps.qcow2", "qcow2", "write -P 1 0 256k");
        QemuImg("bitmap", "--add", "{dir}/bitmaps.qcow2", "b0");
        QemuImg("bitmap", "--add", "-g", "128k", "{dir}/bitmaps.qcow2", "b1");
        Io("bitmaps.qcow2", "qcow2", "write -P 3 5M 1M");

        foreach (int bits in RefcountWidths)
        {
            Create("-f", "qcow2", "-o", $"refcount_bits={bits}", $"{{dir}}/refcount{bits}.qcow2", "64M");
            Io($"refcount{bits}.qcow2", "qcow2", "write -P 1 0 1M", "write -P 2 20M 64k");
        }

        Create("-f", "qcow2", "-o", "cluster_size=512,refcount_bits=1", "{dir}/tiny-clusters.qcow2", "8M");
        Io("tiny-clusters.qcow2", "qcow2", "write -P 1 0 300k", "write -P 2 3M 200k", "write -P 3 7M 64k");

        Create("-f", "qcow2", "-o", "cluster_size=4k", "{dir}/scattered.qcow2", "256M");
        Io("scattered.qcow2", "qcow2", [.. Enumerable.Range(0, 60).Select(i => $"write -P {i} {(i * 7919 % 65536) * 4096} 4k")]);

        Create("-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", "{dir}/subclusters.qcow2", "64M");
        Io("subclusters.qcow2", "qcow2", "write -P 1 0 8k", "write -z 64k 8k", "write -P 2 1M 256k");

        Create("-f", "qcow2", "-o", "data_file={dir}/external.data", "{dir}/external.qcow2", "64M");
        Io("external.qcow2", "qcow2", "write -P 1 0 1M", "write -z 2M 64k");

        Create("-f", "qcow2", "{dir}/zero-alloc.qcow2", "64M");
        Io("zero-alloc.qcow2", "qcow2", "write -P 1 0 512k", "write -z 64k 128k");

        Create("-f", "qcow2", "-b", "plain.qcow2", "-F", "qcow2", "{dir}/overlay.qcow2");
        Io("overlay.qcow2", "qcow2", "write -P 5 128k 64k");

        Create("-f", "qcow2", "-o", "preallocation=metadata", "{dir}/prealloc.qcow2", "8M");

        Create("-f", "qcow2", "-o", "lazy_refcounts=on", "{dir}/dirty.qcow2", "64M");
        Tools.Run("qemu-io", ["-c", "write -P 1 0 1M", "-c", "abort", this["dirty.qcow2"]]);

        // Corruptions of plain.qcow2 (64 KiB clusters: header 0, refcount table 1, refcount block 2, L1 3, L2 4, data 5…).
        Corrupt("leak", e =>
        {
            // One more cluster at the end of the file, counted but unused.
            long cluster = e.FileLength / e.ClusterSize;
            e.SetLength((cluster + 1) * e.ClusterSize);
            e.SetRefcount(cluster, 1);
        });
        Corrupt("refcount-high", e => e.SetRefcount(5, 2));
        Corrupt("refcount-zero", e => e.SetRefcount(6, 0));
        Corrupt("l2-past-end", e => e.SetL2(0, 1, Qcow2Layout.OflagCopied | 0x10000000));
        Corrupt("l1-past-end", e => e.SetL1(0, Qcow2Layout.OflagCopied | 0x10000000));
        Corrupt("l2-on-refcount-table", e => e.SetL2(0, 1, Qcow2Layout.OflagCopied | (ulong)e.RefcountTableOffset));
        Corrupt("l2-unaligned", e => e.SetL2(0, 0, e.GetL2(0, 0) + 0x200));
        Corrupt("l2-unaligned-zero", e => e.SetL2(0, 0, e.GetL2(0, 0) + 0x200 + Qcow2Layout.OflagZero));
        Corrupt("l1-unaligned", e => e.SetL1(0, e.GetL1(0) + 0x200));
        Corrupt("l2-copied", e => e.SetL2(0, 2, e.GetL2(0, 2) & ~Qcow2Layout.OflagCopied));
        Corrupt("l1-copied", e => e.SetL1(0, e.GetL1(0) & ~Qcow2Layout.OflagCopied));
        Corrupt("l2-reserved", e => e.SetL2(0, 3, e.GetL2(0, 3) | 2));
        Corrupt("l2-shared", e => e.SetL2(0, 1, e.GetL2(0, 0)));
        Corrupt("refcount-table-zero", e => e.SetRefcountTableEntry(0, 0));
        Corrupt("refblock-past-end", e => e.SetRefcountTableEntry(0, 0x1000000));

        System.IO.File.Copy(this["snapshots.qcow2"], this["snapshot-incomplete.qcow2"]);
        using (var e = new Qcow2Editor(this["snapshot-incomplete.qcow2"]))
        {
            // The first entry claims 8 bytes of extra data (version 3 entries need 16): it is repaired by a rewrite.
            e.WriteUInt32(e.SnapshotsOffset + 36, 8);
        }

        System.IO.File.Copy(this["snapshots.qcow2"], this["snapshot-extra-data.qcow2"]);
        using (var e = new Qcow2Editor(this["snapshot-extra-data.qcow2"]))
        {
            e.GiveFirstSnapshotExtraData(2048);
        }

        System.IO.File.Copy(this["refcount1.qcow2"], this["refcount1-overflow.qcow2"]);
        using (var e = new Qcow2Editor(this["refcount1-overflow.qcow2"]))
        {
            e.SetL2(0, 1, e.GetL2(0, 0));
        }
    }

    public static readonly int[] RefcountWidths = [1, 2, 4, 8, 16, 32, 64];

    /// <summary>Clean images, for the comparisons of check's report.</summary>
    public static IEnumerable<object[]> CleanNames() =>
    [
        ["plain.qcow2"], ["v2.qcow2"], ["compressed.qcow2"], ["zstd.qcow2"], ["snapshots.qcow2"], ["bitmaps.qcow2"],
        ["refcount1.qcow2"], ["refcount2.qcow2"], ["refcount4.qcow2"], ["refcount8.qcow2"], ["refcount16.qcow2"],
        ["refcount32.qcow2"], ["refcount64.qcow2"], ["tiny-clusters.qcow2"], ["scattered.qcow2"], ["subclusters.qcow2"],
        ["external.qcow2"], ["zero-alloc.qcow2"], ["overlay.qcow2"], ["prealloc.qcow2"],
    ];

    /// <summary>Broken images, for the comparisons of check's report and of its repairs.</summary>
    public static IEnumerable<object[]> CorruptNames() =>
    [
        ["leak.qcow2"], ["refcount-high.qcow2"], ["refcount-zero.qcow2"], ["l2-past-end.qcow2"], ["l1-past-end.qcow2"],
        ["l2-on-refcount-table.qcow2"], ["l2-unaligned.qcow2"], ["l2-unaligned-zero.qcow2"], ["l1-unaligned.qcow2"],
        ["l2-copied.qcow2"], ["l1-copied.qcow2"], ["l2-reserved.qcow2"], ["l2-shared.qcow2"], ["refcount-table-zero.qcow2"],
        ["refblock-past-end.qcow2"], ["dirty.qcow2"], ["snapshot-incomplete.qcow2"], ["snapshot-extra-data.qcow2"],
        ["refcount1-overflow.qcow2"],
    ];

    private void Corrupt(string name, Action<Qcow2Editor> edit)
    {
        System.IO.File.Copy(this["plain.qcow2"], this[name + ".qcow2"]);
        using var editor = new Qcow2Editor(this[name + ".qcow2"]);
        edit(editor);
    }
}

/// <summary>Byte-level edits of a qcow2 file's metadata, for making broken images.</summary>
internal sealed class Qcow2Editor : IDisposable
{
    private readonly FileStream _file;

    public Qcow2Editor(string path)
    {
        _file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        Version = (int)ReadUInt32(4);
        ClusterBits = (int)ReadUInt32(20);
        L1Offset = (long)ReadUInt64(40);
        RefcountTableOffset = (long)ReadUInt64(48);
        SnapshotsOffset = (long)ReadUInt64(64);
        RefcountOrder = Version >= 3 ? (int)ReadUInt32(96) : 4;
    }

    public int Version { get; }

    public int ClusterBits { get; }

    public int ClusterSize => 1 << ClusterBits;

    public long L1Offset { get; }

    public long RefcountTableOffset { get; }

    public long SnapshotsOffset { get; }

    public int RefcountOrder { get; }

    public long FileLength => _file.Length;

    public void SetLength(long length) => _file.SetLength(length);

    public ulong GetL1(int index) => ReadUInt64(L1Offset + index * 8L);

    public void SetL1(int index, ulong value) => WriteUInt64(L1Offset + index * 8L, value);

    public ulong GetL2(int l1Index, int index) => ReadUInt64(L2Table(l1Index) + index * 8L);

    public void SetL2(int l1Index, int index, ulong value) => WriteUInt64(L2Table(l1Index) + index * 8L, value);

    public void SetRefcountTableEntry(int index, ulong value) => WriteUInt64(RefcountTableOffset + index * 8L, value);

    /// <summary>Sets the stored refcount of host cluster <paramref name="cluster"/> (its refcount block must exist).</summary>
    public void SetRefcount(long cluster, ulong value)
    {
        long entries = Qcow2RefcountBlock.EntriesPerBlock(ClusterSize, RefcountOrder);
        long block = (long)(ReadUInt64(RefcountTableOffset + cluster / entries * 8) & Qcow2Layout.RefcountTableOffsetMask);
        Assert.NotEqual(0, block);
        byte[] data = Read(block, ClusterSize);
        Qcow2RefcountBlock.Set(data, cluster % entries, value, RefcountOrder);
        Write(block, data);
    }

    /// <summary>
    /// Rewrites the snapshot table at the end of the file with <paramref name="extraSize"/> bytes of extra data in the
    /// first entry (its known fields kept, zeros after them); the refcounts follow, so only the extra data is wrong.
    /// </summary>
    public void GiveFirstSnapshotExtraData(int extraSize)
    {
        uint count = ReadUInt32(60);
        var table = new List<byte>();
        long offset = SnapshotsOffset;
        long oldEnd = offset;
        for (int i = 0; i < count; i++)
        {
            offset = (offset + 7) & ~7L;
            byte[] fixedPart = Read(offset, 40);
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(12));
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(14));
            int oldExtra = (int)BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(36));
            byte[] extra = Read(offset + 40, oldExtra);
            byte[] strings = Read(offset + 40 + oldExtra, idSize + nameSize);
            offset += 40 + oldExtra + idSize + nameSize;
            oldEnd = offset;
            if (i == 0)
            {
                Array.Resize(ref extra, extraSize);
                BinaryPrimitives.WriteUInt32BigEndian(fixedPart.AsSpan(36), (uint)extraSize);
            }

            while (table.Count % 8 != 0)
            {
                table.Add(0);
            }

            table.AddRange(fixedPart);
            table.AddRange(extra);
            table.AddRange(strings);
        }

        long newOffset = (FileLength + ClusterSize - 1) / ClusterSize * ClusterSize;
        Write(newOffset, [.. table]);
        for (long cluster = newOffset / ClusterSize; cluster <= (newOffset + table.Count - 1) / ClusterSize; cluster++)
        {
            SetRefcount(cluster, 1);
        }

        for (long cluster = SnapshotsOffset / ClusterSize; cluster <= (oldEnd - 1) / ClusterSize; cluster++)
        {
            SetRefcount(cluster, 0);
        }

        WriteUInt64(64, (ulong)newOffset);
    }

    public uint ReadUInt32(long offset) => BinaryPrimitives.ReadUInt32BigEndian(Read(offset, 4));

    public ulong ReadUInt64(long offset) => BinaryPrimitives.ReadUInt64BigEndian(Read(offset, 8));

    public void WriteUInt32(long offset, uint value)
    {
        byte[] bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        Write(offset, bytes);
    }

    public void WriteUInt64(long offset, ulong value)
    {
        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        Write(offset, bytes);
    }

    public void Dispose() => _file.Dispose();

    private long L2Table(int l1Index) => (long)(GetL1(l1Index) & Qcow2Layout.L1OffsetMask);

    private byte[] Read(long offset, int length)
    {
        byte[] data = new byte[length];
        _file.Position = offset;
        _file.ReadExactly(data);
        return data;
    }

    private void Write(long offset, byte[] data)
    {
        _file.Position = offset;
        _file.Write(data);
    }
}
