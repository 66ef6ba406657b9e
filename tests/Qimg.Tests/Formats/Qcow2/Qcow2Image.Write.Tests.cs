using Qimg.Block;
using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Tests.TestSupport;
using static Qimg.Tests.Formats.Qcow2.Qcow2TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>Data written through qimg reads back identically through QEMU, and qemu-img check stays clean.</summary>
public sealed class Qcow2ImageWriteTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Write_PartialClustersIntoBackingChain_CopiesBackingData()
    {
        string base0 = _dir.File("base.qcow2");
        string top = _dir.File("top.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", base0, "1M");
        QemuTools.Io(base0, "write -P 0xaa 0 1M");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top, "2M");

        await using (FormatNode node = await OpenAsync(top, readOnly: false))
        {
            await node.WriteAsync(1000, Pattern(0x11, 3000));
            await node.WriteAsync(70000, Pattern(0x22, 70000));
            await node.WriteAsync(1000000, Pattern(0x33, 100000));
            await node.FlushAsync();
        }

        QemuTools.Io(top,
            "read -P 0xaa 0 1000", "read -P 0x11 1000 3000", "read -P 0xaa 4000 66000", "read -P 0x22 70000 70000",
            "read -P 0xaa 140000 860000", "read -P 0x33 1000000 100000", "read -P 0 1100000 997152");
        AssertCheckClean(top);
    }

    [Theory]
    [InlineData("")]
    [InlineData("compat=0.10")]
    [InlineData("cluster_size=512,refcount_bits=1")]
    [InlineData("cluster_size=2M,refcount_bits=64")]
    [InlineData("extended_l2=on")]
    [InlineData("extended_l2=on,cluster_size=16k,refcount_bits=2")]
    [InlineData("lazy_refcounts=on,refcount_bits=32")]
    [InlineData("preallocation=metadata,cluster_size=4k")]
    public async Task Write_RandomOperations_MatchModel(string options)
    {
        const int size = 6 << 20;
        string image = _dir.File("random.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", options.Length == 0 ? "cluster_size=64k" : options, image, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        byte[] model = new byte[size];
        var random = new Random(options.Sum(c => c * 31) + options.Length);
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await RunRandomOperationsAsync(node, model, random, 120);
        }

        AssertSameBytes(model, ReadAllWithQemu(_dir, image));
        AssertCheckClean(image);
        await using FormatNode reopened = await OpenAsync(image);
        AssertSameBytes(model, await ReadAllAsync(reopened));
        Assert.False(reopened.IsDirty);
    }

    [Fact]
    public async Task Write_ConcurrentRequests_AllLand()
    {
        const int size = 8 << 20;
        string image = _dir.File("concurrent.qcow2");
        string backing = _dir.File("concurrent-base.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", backing, "8M");
        QemuTools.Io(backing, "write -P 0x5c 0 8M");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=64k", "-b", backing, "-F", "qcow2", image, "8M");
        byte[] model = new byte[size];
        model.AsSpan().Fill(0x5c);
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            // Many 4 KiB writes into the same clusters at once: allocations overlap and must wait for each other.
            var tasks = new List<Task>();
            for (int i = 0; i < 512; i++)
            {
                int offset = (i * 4096 * 7) % size;
                byte value = (byte)(i + 1);
                model.AsSpan(offset, 4096).Fill(value);
                tasks.Add(Task.Run(async () => await node.WriteAsync(offset, Pattern(value, 4096))));
            }

            await Task.WhenAll(tasks);
            await node.FlushAsync();
        }

        AssertSameBytes(model, ReadAllWithQemu(_dir, image));
        AssertCheckClean(image);
    }

    [Fact]
    public async Task Write_RefcountTableGrowth_StaysConsistent()
    {
        // 512-byte clusters with 64-bit refcounts: a refcount block covers 64 clusters and the initial one-cluster
        // refcount table 2 MiB, so writing 5 MiB grows the table (more than once, with self-describing blocks).
        string image = _dir.File("grow.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", image, "8M");
        byte[] model = new byte[8 << 20];
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            for (int i = 0; i < 40; i++)
            {
                byte[] data = Pattern((byte)(i + 1), 131072);
                await node.WriteAsync(i * 131072L, data);
                data.CopyTo(model, i * 131072);
            }
        }

        AssertSameBytes(model, ReadAllWithQemu(_dir, image));
        AssertCheckClean(image);
    }

    [Fact]
    public async Task Write_OverCompressedClusters_Reallocates()
    {
        string image = _dir.File("compressed.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", image, "1M");
        QemuTools.Io(image, "write -c -P 0x71 0 64k", "write -c -P 0x72 64k 64k", "write -c -P 0x73 128k 64k");
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await node.WriteAsync(70000, Pattern(0x01, 100));
            await node.WriteZeroesAsync(128 * 1024, 65536);
        }

        QemuTools.Io(image, "read -P 0x71 0 64k", "read -P 0x72 64k 4464", "read -P 0x01 70000 100", "read -P 0x72 70100 60972", "read -P 0 128k 896k");
        AssertCheckClean(image);
    }

    [Fact]
    public async Task Write_WithInternalSnapshot_CopiesSharedClusters()
    {
        string image = _dir.File("snapshot.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", image, "1M");
        QemuTools.Io(image, "write -P 0x41 0 1M");
        QemuTools.Img("snapshot", "-c", "before", image);
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await node.WriteAsync(5000, Pattern(0x42, 100000));
            await node.DiscardAsync(512 * 1024, 128 * 1024);
        }

        AssertCheckClean(image);
        QemuTools.Io(image, "read -P 0x41 0 5000", "read -P 0x42 5000 100000", "read -P 0x41 105000 419288", "read -P 0 512k 128k");
        string snapshotRaw = _dir.File("snapshot.raw");
        QemuTools.Img("convert", "-l", "snapshot.name=before", "-O", "raw", image, snapshotRaw);
        byte[] expected = new byte[1 << 20];
        expected.AsSpan().Fill(0x41);
        AssertSameBytes(expected, File.ReadAllBytes(snapshotRaw));
    }

    [Theory]
    [InlineData("compat=1.1", false)]
    [InlineData("compat=1.1", true)]
    [InlineData("compat=0.10", false)]
    [InlineData("compat=0.10", true)]
    [InlineData("extended_l2=on", true)]
    public async Task WriteZeroesAndDiscard_MatchQemuSemantics(string options, bool withBacking)
    {
        string image = _dir.File("zero.qcow2");
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-o", options };
        byte[] model = new byte[2 << 20];
        if (withBacking)
        {
            string backing = _dir.File("zero-base.qcow2");
            QemuTools.Img("create", "-q", "-f", "qcow2", backing, "2M");
            QemuTools.Io(backing, "write -P 0x99 0 2M");
            args.AddRange(["-b", backing, "-F", "qcow2"]);
            model.AsSpan().Fill(0x99);
        }

        args.AddRange([image, "2M"]);
        QemuTools.Img([.. args]);
        QemuTools.Io(image, "write -P 0x10 0 1M");
        model.AsSpan(0, 1 << 20).Fill(0x10);
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await node.WriteZeroesAsync(0, 65536, ZeroFlags.MayUnmap);
            model.AsSpan(0, 65536).Clear();
            await node.WriteZeroesAsync(100000, 5000);
            model.AsSpan(100000, 5000).Clear();
            await node.WriteZeroesAsync(1500 * 1024, 200 * 1024);
            model.AsSpan(1500 * 1024, 200 * 1024).Clear();

            // Discard: whole clusters only; they read as zero on v3 and as the backing file (unallocated) on v2
            // without backing, and nothing happens on v2 with backing.
            await node.DiscardAsync(300 * 1024, 200 * 1024);
            if (!(options.Contains("0.10", StringComparison.Ordinal) && withBacking))
            {
                model.AsSpan(320 * 1024, 128 * 1024).Clear();
            }

            await node.FlushAsync();
        }

        AssertSameBytes(model, ReadAllWithQemu(_dir, image));
        AssertCheckClean(image);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Write_ExternalDataFile_WritesGuestOffsets(bool raw)
    {
        string image = _dir.File("ext.qcow2");
        string data = _dir.File("ext.data");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", $"data_file={data},data_file_raw={(raw ? "on" : "off")}", image, "4M");
        byte[] model = new byte[4 << 20];
        var random = new Random(7);
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await RunRandomOperationsAsync(node, model, random, 60);
        }

        AssertSameBytes(model, ReadAllWithQemu(_dir, image));
        AssertCheckClean(image);
        if (raw)
        {
            byte[] file = File.ReadAllBytes(data);
            AssertSameBytes(model, file.Length >= model.Length ? file[..model.Length] : [.. file, .. new byte[model.Length - file.Length]]);
        }
    }

    [Fact]
    public async Task LazyRefcounts_DirtyWhileOpen_CleanAfterClose()
    {
        string image = _dir.File("lazy.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", image, "4M");
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            Assert.False(node.IsDirty);
            await node.WriteAsync(0, Pattern(1, 300000));
            Assert.True(node.IsDirty);
            await node.FlushAsync();
            Assert.True(node.IsDirty);
        }

        await using (FormatNode reopened = await OpenAsync(image))
        {
            Assert.False(reopened.IsDirty);
        }

        AssertCheckClean(image);
    }

    [Fact]
    public async Task LazyRefcounts_UncleanShutdown_RepairedOnWritableOpen()
    {
        string image = _dir.File("crash.qcow2");
        string copy = _dir.File("crash-copy.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", image, "4M");
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await node.WriteAsync(0, Pattern(3, 1 << 20));
            await node.FlushAsync();

            // The copy is what a crash would leave: dirty, with refcounts behind.
            File.Copy(image, copy);
        }

        await using (FormatNode dirty = await OpenAsync(copy))
        {
            Assert.True(dirty.IsDirty);
        }

        Assert.NotEqual(0, QemuTools.Check(copy).ExitCode);
        await using (FormatNode repaired = await OpenAsync(copy, readOnly: false))
        {
            Assert.False(repaired.IsDirty);
        }

        AssertCheckClean(copy);
        QemuTools.Io(copy, "read -P 3 0 1M");
    }

    [Fact]
    public async Task Resize_GrowAndShrink_MatchesQemu()
    {
        string image = _dir.File("resize.qcow2");
        string reference = _dir.File("resize-ref.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", image, "1M");
        QemuTools.Io(image, "write -P 7 0 1M");
        File.Copy(image, reference);
        QemuTools.Img("resize", "-q", reference, "300M");
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await node.TruncateAsync(300 << 20);
            Assert.Equal(300 << 20, node.Length);
        }

        AssertSameBytes(File.ReadAllBytes(reference), File.ReadAllBytes(image));
        QemuTools.Img("resize", "-q", "--shrink", reference, "512K");
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            await node.TruncateAsync(512 << 10);
        }

        AssertCheckClean(image);
        AssertSameBytes(File.ReadAllBytes(reference), File.ReadAllBytes(image));
    }

    [Theory]
    [InlineData("compression_type=zlib", 65536)]
    [InlineData("compression_type=zstd", 65536)]
    [InlineData("compression_type=zlib,cluster_size=4k", 4096)]
    [InlineData("extended_l2=on,compression_type=zstd", 65536)]
    public async Task WriteCompressed_SameFileAsQemuImgConvert(string options, int clusterSize)
    {
        // Clusters written compressed in guest order give the file qemu-img convert -c makes from the same data.
        const int size = 1000 * 1024;
        byte[] raw = new byte[size];
        var writes = new List<(long Offset, int Length)>();
        for (long offset = 0; offset < size; offset += 3L * clusterSize)
        {
            int length = (int)Math.Min(clusterSize, size - offset);
            for (int j = 0; j < length; j++)
            {
                raw[offset + j] = (byte)(j % (int)(offset / clusterSize + 3) == 0 ? offset / clusterSize + 1 : 0);
            }

            writes.Add((offset, length));
        }

        // An incompressible cluster is stored normally, and the image ends in a partial cluster padded with zeroes.
        new Random(5).NextBytes(raw.AsSpan(clusterSize, clusterSize));
        writes.Insert(1, (clusterSize, clusterSize));
        int tail = size % clusterSize == 0 ? clusterSize : size % clusterSize;
        if (writes[^1].Offset != size - tail)
        {
            raw.AsSpan(size - tail, tail).Fill(0x3c);
            writes.Add((size - tail, tail));
        }

        string image = _dir.File("compressed.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", options, image, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            foreach ((long offset, int length) in writes)
            {
                await node.WriteAsync(offset, raw.AsMemory((int)offset, length), WriteFlags.Compressed);
            }

            await node.CompleteCompressedWritesAsync();
        }

        string source = _dir.File("source.raw");
        string reference = _dir.File("reference.qcow2");
        File.WriteAllBytes(source, raw);
        QemuTools.Img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", options, source, reference);
        AssertSameBytes(raw, ReadAllWithQemu(_dir, image));
        AssertCheckClean(image);
        AssertSameBytes(File.ReadAllBytes(reference), File.ReadAllBytes(image));
    }

    /// <summary>Random writes, zero writes and discards at random alignments, mirrored into <paramref name="model"/>.</summary>
    internal static async Task RunRandomOperationsAsync(BlockNode node, byte[] model, Random random, int count)
    {
        int size = model.Length;
        for (int i = 0; i < count; i++)
        {
            int kind = random.Next(10);
            int length = random.Next(4) switch
            {
                0 => random.Next(1, 600),
                1 => random.Next(1, 70000),
                2 => 65536 * random.Next(1, 8),
                _ => random.Next(1, 400000),
            };
            int offset = random.Next(3) == 0 ? random.Next(size / 65536) * 65536 : random.Next(size);
            length = Math.Min(length, size - offset);
            if (length == 0)
            {
                continue;
            }

            if (kind < 7)
            {
                byte[] data = Pattern((byte)random.Next(1, 256), length);
                await node.WriteAsync(offset, data);
                data.CopyTo(model, offset);
            }
            else if (kind < 9)
            {
                await node.WriteZeroesAsync(offset, length, random.Next(2) == 0 ? ZeroFlags.None : ZeroFlags.MayUnmap);
                model.AsSpan(offset, length).Clear();
            }
            else
            {
                // Discarded data may read as zero or stay: only check it against what the image now reads.
                await node.DiscardAsync(offset, length);
                byte[] now = new byte[length];
                await node.ReadAsync(offset, now);
                for (int j = 0; j < length; j++)
                {
                    Assert.True(now[j] == 0 || now[j] == model[offset + j], $"Discard at {offset}+{length} left byte {offset + j} = {now[j]}");
                }

                now.CopyTo(model, offset);
            }

            if (random.Next(20) == 0)
            {
                await node.FlushAsync();
            }
        }
    }

    private static void AssertCheckClean(string image)
    {
        (int code, string output) = QemuTools.Check(image);
        Assert.True(code == 0, $"qemu-img check failed ({code}):\n{output}");
        Assert.Contains("No errors were found on the image.", output, StringComparison.Ordinal);
    }

    internal static byte[] Pattern(byte value, int length)
    {
        byte[] data = new byte[length];
        data.AsSpan().Fill(value);
        return data;
    }
}
