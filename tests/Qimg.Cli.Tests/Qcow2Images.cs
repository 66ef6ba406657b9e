using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// qcow2 images made by qemu-img and qemu-io: data, zero clusters, discarded ranges, compressed clusters, internal
/// snapshots, a 3-deep backing chain (with a shorter base and relative names), subclusters, external data files,
/// version 2, a dirty image with lazy refcounts, zstd compression, bitmaps, a raw backing file, dangling backing files.
/// </summary>
public sealed class Qcow2Images : ImageSet
{
    public Qcow2Images()
    {
        Create("-f", "qcow2", "{dir}/plain.qcow2", "1M");

        Create("-f", "qcow2", "{dir}/data.qcow2", "4M");
        Io("data.qcow2", "qcow2", "write -P 1 0 128k", "write -z 256k 64k", "write -c -P 2 1M 64k", "discard 64k 64k", "write -P 3 2M 4k", "write -P 4 3M 512");
        QemuImg("snapshot", "-c", "s1", "{dir}/data.qcow2");
        QemuImg("snapshot", "-c", "second-snapshot-with-a-long-name", "{dir}/data.qcow2");
        Io("data.qcow2", "qcow2", "write -P 5 64k 64k");

        Create("-f", "qcow2", "{dir}/base.qcow2", "1M");
        Io("base.qcow2", "qcow2", "write -P 1 0 512k");
        Create("-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "{dir}/mid.qcow2", "2M");
        Io("mid.qcow2", "qcow2", "write -P 2 64k 64k", "write -z 192k 64k", "write -P 2 1536k 64k");
        Create("-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "{dir}/top.qcow2");
        Io("top.qcow2", "qcow2", "write -P 3 128k 64k", "discard 0 64k", "write -z 320k 64k");
        System.IO.Directory.CreateDirectory(this["sub"]);
        Create("-f", "qcow2", "-b", "../top.qcow2", "-F", "qcow2", "{dir}/sub/rel.qcow2");
        Create("-f", "qcow2", "-b", "{dir}/base.qcow2", "-F", "qcow2", "{dir}/abs.qcow2", "1M");

        Create("-f", "qcow2", "-o", "extended_l2=on", "{dir}/subclusters.qcow2", "1M");
        Io("subclusters.qcow2", "qcow2", "write -P 1 4k 4k", "write -z 40k 4k", "write -P 2 64k 32k", "write -P 3 200k 100k");

        Create("-f", "qcow2", "-o", "data_file={dir}/external.data", "{dir}/external.qcow2", "1M");
        Io("external.qcow2", "qcow2", "write -P 1 0 64k", "write -z 128k 64k");
        Create("-f", "qcow2", "-o", "data_file={dir}/external-raw.data,data_file_raw=on", "{dir}/external-raw.qcow2", "1M");
        Io("external-raw.qcow2", "qcow2", "write -P 1 0 64k");

        Create("-f", "qcow2", "-o", "compat=0.10", "{dir}/v2.qcow2", "1M");
        Io("v2.qcow2", "qcow2", "write -P 1 0 64k", "write -z 64k 64k");

        Create("-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4k,refcount_bits=8", "{dir}/dirty.qcow2", "1M");
        Tools.Run("qemu-io", ["-c", "write -P 1 0 64k", "-c", "abort", this["dirty.qcow2"]]);

        Create("-f", "qcow2", "-o", "compression_type=zstd", "{dir}/zstd.qcow2", "1M");
        Io("zstd.qcow2", "qcow2", "write -c -P 1 0 64k", "write -P 2 64k 64k");

        Create("-f", "qcow2", "{dir}/bitmaps.qcow2", "1M");
        QemuImg("bitmap", "--add", "{dir}/bitmaps.qcow2", "b0");
        QemuImg("bitmap", "--add", "-g", "128k", "--disable", "{dir}/bitmaps.qcow2", "b1");

        Create("-f", "raw", "{dir}/backing.raw", "1M");
        Io("backing.raw", "raw", "write -P 9 0 64k");
        Create("-f", "qcow2", "-b", "backing.raw", "-F", "raw", "{dir}/over-raw.qcow2");
        Io("over-raw.qcow2", "qcow2", "write -P 8 512k 64k");

        Create("-f", "qcow2", "-u", "-b", "nothere.qcow2", "-F", "qcow2", "{dir}/dangling.qcow2", "1M");
        Create("-f", "qcow2", "-u", "-b", "loop2.qcow2", "-F", "qcow2", "{dir}/loop1.qcow2", "1M");
        Create("-f", "qcow2", "-u", "-b", "loop1.qcow2", "-F", "qcow2", "{dir}/loop2.qcow2", "1M");
        Create("-f", "qcow2", "-o", "cluster_size=2M,preallocation=metadata", "{dir}/prealloc.qcow2", "8M");
        Create("-f", "qcow2", "-o", "cluster_size=512", "{dir}/small-clusters.qcow2", "1M");
        Io("small-clusters.qcow2", "qcow2", "write -P 1 1k 3k");

        // A compressed run whose 15th cluster became a normal cluster at an unaligned offset: map prints the extents
        // before it, then fails (found by fuzzing: qimg held back the last extent qemu-img had already printed).
        Create("-f", "qcow2", "-o", "cluster_size=4k", "{dir}/corrupt-midway.qcow2", "4M");
        Io("corrupt-midway.qcow2", "qcow2", "write -P 1 0 64k", "write -c -P 2 1M 64k");
        using (var editor = new Qcow2Editor(this["corrupt-midway.qcow2"]))
        {
            editor.SetL2(0, (1 << 20) / 4096 + 14, 0x200);
        }

        // A broken entry after a compressed run: human map stops at the compressed clusters before looking further.
        Create("-f", "qcow2", "-o", "cluster_size=4k", "{dir}/compressed-then-corrupt.qcow2", "4M");
        Io("compressed-then-corrupt.qcow2", "qcow2", "write -P 1 0 16k", "write -c -P 2 1M 64k");
        using (var editor = new Qcow2Editor(this["compressed-then-corrupt.qcow2"]))
        {
            editor.SetL2(0, (1 << 20) / 4096 + 30, 0x200);
        }

        // A backing-format extension holding only NULs: QEMU reads it as an empty name and probes the backing file.
        Create("-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "{dir}/empty-backing-format.qcow2");
        BlankBackingFormat(this["empty-backing-format.qcow2"]);
    }

    private static void BlankBackingFormat(string path)
    {
        byte[] header = new byte[4096];
        using FileStream file = new(path, FileMode.Open, FileAccess.ReadWrite);
        file.ReadExactly(header);
        int extension = header.AsSpan().IndexOf((ReadOnlySpan<byte>)[0xE2, 0x79, 0x2A, 0xCA]);
        Assert.True(extension > 0, "no backing format extension");
        int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(extension + 4));
        file.Position = extension + 8;
        file.Write(new byte[length]);
    }

    /// <summary>Images every info/map test runs on.</summary>
    public static IEnumerable<object[]> Names() =>
    [
        ["plain.qcow2"], ["data.qcow2"], ["base.qcow2"], ["mid.qcow2"], ["top.qcow2"], ["sub/rel.qcow2"], ["abs.qcow2"],
        ["subclusters.qcow2"], ["external.qcow2"], ["external-raw.qcow2"], ["v2.qcow2"], ["dirty.qcow2"], ["zstd.qcow2"],
        ["bitmaps.qcow2"], ["over-raw.qcow2"], ["prealloc.qcow2"], ["small-clusters.qcow2"], ["corrupt-midway.qcow2"],
        ["compressed-then-corrupt.qcow2"], ["empty-backing-format.qcow2"],
    ];
}
