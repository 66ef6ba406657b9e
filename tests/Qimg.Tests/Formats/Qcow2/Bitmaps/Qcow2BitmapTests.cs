using System.Globalization;
using Qimg.Block;
using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Operations;
using Qimg.Operations.Bitmap;
using Qimg.Tests.TestSupport;
using static Qimg.Tests.Formats.Qcow2.Qcow2TestSupport;

namespace Qimg.Tests.Formats.Qcow2.Bitmaps;

/// <summary>
/// Persistent bitmaps against QEMU: the same operations through qemu-io / qemu-img and through qimg, on copies of one
/// image, must leave byte-identical files (QEMU's allocation order and layout), with the bits QEMU would store.
/// </summary>
public sealed class Qcow2BitmapTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A guest operation, as a qemu-io command and as a qimg call.</summary>
    public sealed record Op(string Kind, long Offset, long Length, byte Value = 0)
    {
        public string QemuIo => Kind switch
        {
            "write" => $"write -P {Value} {Offset} {Length}",
            "compressed" => $"write -c -P {Value} {Offset} {Length}",
            "zero" => $"write -z {Offset} {Length}",
            "zero-unmap" => $"write -z -u {Offset} {Length}",
            "discard" => $"discard {Offset} {Length}",
            _ => throw new InvalidOperationException(Kind),
        };

        public async Task ApplyAsync(BlockNode node)
        {
            switch (Kind)
            {
                case "write":
                    await node.WriteAsync(Offset, Filled(Value, Length));
                    break;
                case "compressed":
                    await node.WriteAsync(Offset, Filled(Value, Length), WriteFlags.Compressed);
                    break;
                case "zero":
                    await node.WriteZeroesAsync(Offset, Length);
                    break;
                case "zero-unmap":
                    await node.WriteZeroesAsync(Offset, Length, ZeroFlags.MayUnmap);
                    break;
                case "discard":
                    await node.DiscardAsync(Offset, Length);
                    break;
                default:
                    throw new InvalidOperationException(Kind);
            }
        }

        public override string ToString() => QemuIo;
    }

    private static readonly Op[] s_mixedOps =
    [
        new("write", 0, 4096, 1),
        new("write", 100_000, 300_000, 2),
        new("write", (3 << 20) + 7, 1, 3),
        new("zero", 1 << 20, 70_000),
        new("zero-unmap", 2 << 20, 128 << 10),
        new("discard", 5 << 20, 200_000),
        new("write", (8 << 20) - 512, 512, 4),
    ];

    [Theory]
    [InlineData("cluster_size=64k")]
    [InlineData("cluster_size=4k")]
    [InlineData("cluster_size=512")]
    [InlineData("cluster_size=2M")]
    [InlineData("extended_l2=on")]
    [InlineData("lazy_refcounts=on")]
    [InlineData("refcount_bits=1,cluster_size=16k")]
    public async Task Write_SameAsQemuIo_ByteIdentical(string options)
    {
        string original = CreateWithBitmaps("base.qcow2", options, "8M");
        QemuTools.Io(original, "write -P 9 4M 100k");
        await AssertSameAsQemuIoAsync(original, s_mixedOps);
    }

    [Theory]
    [InlineData(1, "cluster_size=64k")]
    [InlineData(2, "cluster_size=4k")]
    [InlineData(3, "extended_l2=on,cluster_size=32k")]
    public async Task RandomOperations_SameAsQemuIo_ByteIdentical(int seed, string options)
    {
        const long size = 16 << 20;
        string original = CreateWithBitmaps("base.qcow2", options, "16M");
        var random = new Random(seed);
        string[] kinds = ["write", "write", "zero", "zero-unmap", "discard"];
        var ops = new List<Op>();
        for (int i = 0; i < 60; i++)
        {
            long offset = random.NextInt64(size - 1);
            long length = Math.Min(size - offset, random.Next(3) == 0 ? random.Next(1, 4096) : random.Next(1, 3 << 20));
            ops.Add(new Op(kinds[random.Next(kinds.Length)], offset, length, (byte)random.Next(1, 256)));
        }

        // Zero writes and discards free clusters that QEMU reuses at once; qimg reuses them only after the L2 tables that
        // dropped them are flushed (issue 7), so later data lands elsewhere: same bitmaps and data, not the same layout.
        await AssertSameAsQemuIoAsync(original, [.. ops], sameLayout: false);
    }

    [Fact]
    public async Task CompressedWrites_SameAsQemuIo_ByteIdentical()
    {
        string original = CreateWithBitmaps("base.qcow2", "cluster_size=64k", "8M");
        // One cluster per request: QEMU compresses the clusters of a longer request in parallel threads, so the order in
        // which they are allocated varies from run to run.
        await AssertSameAsQemuIoAsync(original, [new("compressed", 0, 65536, 5), new("compressed", 1 << 20, 65536, 6), new("compressed", (1 << 20) + 65536, 65536, 8), new("write", 70_000, 100, 7)]);
    }

    [Fact]
    public async Task ManyClustersOfBitmapData_SameAsQemuIo_ByteIdentical()
    {
        // 512-byte granules over 64 MiB with 512-byte clusters: the 512-granule bitmap spans 32 data clusters.
        string original = _dir.File("big.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", original, "64M");
        QemuTools.Img("bitmap", "--add", "-g", "512", original, "fine");
        QemuTools.Img("bitmap", "--add", "-g", "1M", original, "coarse");
        var ops = new List<Op>();
        for (int i = 0; i < 40; i++)
        {
            ops.Add(new Op("write", i * 1_600_000L + (i * 977), 700 + (i * 131), (byte)i));
        }

        await AssertSameAsQemuIoAsync(original, [.. ops]);
    }

    [Fact]
    public async Task OpenWritable_WithoutWrites_StoresBitmapsLikeQemu()
    {
        string original = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Io(original, "write -P 9 1M 100k");
        await AssertSameAsQemuIoAsync(original, []);
    }

    [Fact]
    public async Task OpenWritable_MarksInUseUntilClosed()
    {
        string original = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Io(original, "write -P 9 1M 100k");
        string qemu = Copy(original, "qemu.qcow2");
        string qimg = Copy(original, "qimg.qcow2");

        // qemu-io killed while the image is open leaves what an open image looks like on disk.
        QemuTools.Run("qemu-io", "-c", "write -P 1 0 64k", "-c", "sigraise 9", qemu);
        await using (FormatNode node = await OpenAsync(qimg, readOnly: false))
        {
            await node.WriteAsync(0, Filled(1, 65536));
            Assert.Equal(BitmapFile.Describe(qemu), BitmapFile.Describe(qimg));
            Assert.All(BitmapFile.ReadDirectory(qimg), e => Assert.Equal(1u, e.Flags & 1));
        }

        Assert.All(BitmapFile.ReadDirectory(qimg), e => Assert.Equal(0u, e.Flags & 1));
        AssertCheckClean(qimg);
    }

    [Fact]
    public async Task Open_ReadOnly_LoadsTheBitsQemuStored()
    {
        string image = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Io(image, "write -P 1 100000 1", "write -P 1 3M 200k", "write -z 7M 4096");
        byte[] before = File.ReadAllBytes(image);
        await using (FormatNode node = await OpenAsync(image))
        {
            var host = (IPersistentBitmapHost)node;
            Assert.True(host.SupportsPersistentBitmaps);
            Assert.Equal(["fine", "off", "auto"], host.DirtyBitmaps.Select(b => b.Name));
            DirtyBitmap auto = DirtyBitmapCommands.Find(node, "auto");
            DirtyBitmap off = DirtyBitmapCommands.Find(node, "off");
            DirtyBitmap fine = DirtyBitmapCommands.Find(node, "fine");
            Assert.True(auto.IsEnabled && auto.IsReadOnly && !auto.IsInconsistent && auto.Granularity == 65536);
            Assert.False(off.IsEnabled);
            Assert.Equal([(65536L, 65536L), (3L << 20, 256L << 10), (7L << 20, 65536L)], auto.GetDirtyRanges());
            Assert.Equal([(99840L, 512L), (3L << 20, 200L << 10), (7L << 20, 4096L)], fine.GetDirtyRanges());
            Assert.Empty(off.GetDirtyRanges());
        }

        Assert.Equal(before, File.ReadAllBytes(image));
    }

    [Fact]
    public async Task InUseBitmap_IsInconsistent_AndKeptAsIs()
    {
        string original = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Run("qemu-io", "-c", "write -P 1 0 64k", "-c", "sigraise 9", original);
        QemuTools.Img("bitmap", "--add", original, "fresh");
        await using (FormatNode node = await OpenAsync(original))
        {
            DirtyBitmap auto = DirtyBitmapCommands.Find(node, "auto");
            Assert.True(auto.IsInconsistent);
            Assert.False(auto.IsEnabled);
            Assert.False(DirtyBitmapCommands.Find(node, "fresh").IsInconsistent);
            OperationException e = Assert.Throws<OperationException>(() => DirtyBitmapCommands.Clear(node, "auto"));
            Assert.Equal("Bitmap 'auto' is readonly and cannot be modified", e.Message);
        }

        await AssertSameAsQemuIoAsync(original, [new("write", 0, 1 << 20, 3)]);
    }

    [Fact]
    public async Task IgnoredBitmapsExtension_DroppedOnWritableOpen_LikeQemu()
    {
        string original = CreateWithBitmaps("base.qcow2", "", "8M");
        // Clear the "bitmaps" auto-clear bit: QEMU then ignores the bitmaps and drops the extension when writing.
        BitmapFile.PatchUInt64(original, 88, 0);
        var warnings = new List<string>();
        await using (FormatNode node = await OpenAsync(original, warning: warnings.Add))
        {
            Assert.Empty(((IPersistentBitmapHost)node).DirtyBitmaps);
        }

        // qemu-img prints the same two lines, the second without its newline.
        (_, _, string stderr) = QemuTools.Run("qemu-img", "info", original);
        Assert.Equal(stderr + "\n", $"qemu-img: warning: {Assert.Single(warnings)}\n");
        await AssertSameAsQemuIoAsync(original, [new("write", 0, 4096, 1)], leaksExpected: true);
    }

    [Theory]
    [InlineData("grow")]
    [InlineData("shrink")]
    public async Task Resize_SameAsQemuImgResize(string direction)
    {
        string original = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Io(original, "write -P 1 0 8M");
        string qemu = Copy(original, "qemu.qcow2");
        string qimg = Copy(original, "qimg.qcow2");
        long size = direction == "grow" ? 20 << 20 : (3 << 20) + 512;
        if (direction == "grow")
        {
            QemuTools.Img("resize", "-q", qemu, size.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            QemuTools.Img("resize", "-q", "--shrink", qemu, size.ToString(CultureInfo.InvariantCulture));
        }

        await using (FormatNode node = await DiskImage.OpenAsync(qimg, new ImageOpenOptions { ReadOnly = false, Resize = true }))
        {
            await node.TruncateAsync(size);
        }

        AssertSameFile(qemu, qimg);
        AssertCheckClean(qimg);
    }

    [Fact]
    public async Task Resize_InconsistentBitmap_Refused()
    {
        string image = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Run("qemu-io", "-c", "sigraise 9", image);
        (int code, _, string stderr) = QemuTools.Run("qemu-img", "resize", image, "16M");
        Assert.Equal(1, code);
        await using FormatNode node = await DiskImage.OpenAsync(image, new ImageOpenOptions { ReadOnly = false, Resize = true });
        NotSupportedException e = await Assert.ThrowsAsync<NotSupportedException>(async () => await node.TruncateAsync(16 << 20));
        Assert.Equal(stderr, $"qemu-img: {e.Message}\n");
    }

    [Fact]
    public async Task BitmapCommands_SameAsQemuImgBitmap()
    {
        string original = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Io(original, "write -P 1 0 100k", "write -P 1 5M 1M");
        string other = _dir.File("other.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", other, "8M");
        QemuTools.Img("bitmap", "--add", "-g", "8k", other, "src");
        QemuTools.Io(other, "write -P 1 2M 20k");
        string qemu = Copy(original, "qemu.qcow2");
        string qimg = Copy(original, "qimg.qcow2");
        QemuTools.Img("bitmap", "--add", "-g", "256k", "--disable", qemu, "new1");
        QemuTools.Img("bitmap", "--remove", qemu, "off");
        QemuTools.Img("bitmap", "--clear", qemu, "fine");
        QemuTools.Img("bitmap", "--disable", qemu, "auto");
        QemuTools.Img("bitmap", "--enable", qemu, "new1");
        QemuTools.Img("bitmap", "--merge", "src", "-b", other, "-F", "qcow2", qemu, "new1");
        QemuTools.Img("bitmap", "--add", qemu, "new2");

        // Each qemu-img bitmap run opens and closes the image: so does qimg here.
        async Task RunAsync(Func<FormatNode, Task> action)
        {
            await using FormatNode node = await DiskImage.OpenAsync(qimg, new ImageOpenOptions { ReadOnly = false, NoBacking = true });
            await action(node);
        }

        await RunAsync(async n => await DirtyBitmapCommands.AddAsync(n, "new1", 256 << 10, disabled: true));
        await RunAsync(async n => await DirtyBitmapCommands.RemoveAsync(n, "off"));
        await RunAsync(n => Task.Run(() => DirtyBitmapCommands.Clear(n, "fine")));
        await RunAsync(n => Task.Run(() => DirtyBitmapCommands.Disable(n, "auto")));
        await RunAsync(n => Task.Run(() => DirtyBitmapCommands.Enable(n, "new1")));
        await RunAsync(async n =>
        {
            await using FormatNode source = await DiskImage.OpenAsync(other, new ImageOpenOptions { Format = "qcow2", NoBacking = true });
            DirtyBitmapCommands.Merge(n, "new1", source, "src");
        });
        await RunAsync(async n => await DirtyBitmapCommands.AddAsync(n, "new2", null, disabled: false));

        AssertSameFile(qemu, qimg);
        AssertCheckClean(qimg);
    }

    [Fact]
    public async Task BitmapCommands_Errors_InQemusWords()
    {
        string image = CreateWithBitmaps("base.qcow2", "", "8M");
        string v2 = _dir.File("v2.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2, "8M");
        await using (FormatNode node = await OpenAsync(image, readOnly: false))
        {
            Assert.Equal("Bitmap already exists: auto", (await Assert.ThrowsAsync<OperationException>(async () => await DirtyBitmapCommands.AddAsync(node, "auto", null, false))).Message);
            Assert.Equal("Bitmap name cannot be empty", (await Assert.ThrowsAsync<OperationException>(async () => await DirtyBitmapCommands.AddAsync(node, "", null, false))).Message);
            Assert.Equal("Granularity must be power of 2 and at least 512", (await Assert.ThrowsAsync<OperationException>(async () => await DirtyBitmapCommands.AddAsync(node, "x", 1000, false))).Message);
            Assert.Matches("^Can't make bitmap '.*' persistent in '#block[0-9]+': Name length exceeds maximum \\(1023 characters\\)$", (await Assert.ThrowsAsync<OperationException>(async () => await DirtyBitmapCommands.AddAsync(node, new string('n', 1024), null, false))).Message);
            Assert.Equal("Dirty bitmap 'nope' not found", Assert.Throws<OperationException>(() => DirtyBitmapCommands.Clear(node, "nope")).Message);
        }

        await using (FormatNode node = await OpenAsync(v2, readOnly: false))
        {
            Assert.Matches("^Can't make bitmap 'x' persistent in '#block[0-9]+': Cannot store dirty bitmaps in qcow2 v2 files$", (await Assert.ThrowsAsync<OperationException>(async () => await DirtyBitmapCommands.AddAsync(node, "x", null, false))).Message);
            Assert.False(((IPersistentBitmapHost)node).SupportsPersistentBitmaps);
        }

        AssertCheckClean(image);
    }

    [Fact]
    public async Task Remove_LastBitmap_DropsExtension_LikeQemu()
    {
        string original = _dir.File("one.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", original, "8M");
        QemuTools.Img("bitmap", "--add", original, "only");
        QemuTools.Io(original, "write 0 1M");
        string qemu = Copy(original, "qemu.qcow2");
        string qimg = Copy(original, "qimg.qcow2");
        QemuTools.Img("bitmap", "--remove", qemu, "only");
        await using (FormatNode node = await OpenAsync(qimg, readOnly: false))
        {
            await DirtyBitmapCommands.RemoveAsync(node, "only");
            Assert.Empty(((IPersistentBitmapHost)node).DirtyBitmaps);
        }

        AssertSameFile(qemu, qimg);
        Assert.Null(BitmapFile.ReadExtension(File.ReadAllBytes(qimg)));
    }

    // ------------------------------------------------------------ hostile images

    public static TheoryData<string> HostileCases => new() { "reserved-bit", "unaligned", "table-size", "duplicate", "flags", "granularity", "zero-table-size" };

    [Theory]
    [MemberData(nameof(HostileCases))]
    public async Task HostileBitmaps_FailToOpen_WithQemusMessage(string kind)
    {
        string image = CreateWithBitmaps("base.qcow2", "", "8M");
        QemuTools.Io(image, "write 0 64k");
        List<BitmapFile.Entry> entries = BitmapFile.ReadDirectory(image);
        switch (kind)
        {
            case "reserved-bit":
                BitmapFile.PatchUInt64(image, (long)entries[1].TableOffset, 2);
                break;
            case "unaligned":
                BitmapFile.PatchUInt64(image, (long)entries[0].TableOffset, 0x10200);
                break;
            case "table-size":
                BitmapFile.PatchUInt32(image, entries[0].Position + 8, 2);
                break;
            case "duplicate":
                BitmapFile.Patch(image, entries[2].Position + 24, "auto"u8);
                break;
            case "flags":
                BitmapFile.PatchUInt32(image, entries[2].Position + 12, 4);
                break;
            case "granularity":
                BitmapFile.Patch(image, entries[2].Position + 17, [40]);
                break;
            case "zero-table-size":
                BitmapFile.PatchUInt32(image, entries[1].Position + 8, 0);
                break;
        }

        (int code, _, string stderr) = QemuTools.Run("qemu-img", "info", image);
        Assert.Equal(1, code);
        string expected = stderr.Replace("qemu-img: Could not open '" + image + "': ", "", StringComparison.Ordinal).TrimEnd('\n');
        Exception e = await Assert.ThrowsAnyAsync<Exception>(async () => await OpenAsync(image));
        Assert.Equal(expected, e.Message);
    }

    [Fact]
    public async Task AllOnesTableEntry_LoadsAndStoresLikeQemu()
    {
        string original = CreateWithBitmaps("base.qcow2", "", "10M");
        QemuTools.Io(original, "write 0 64k");
        BitmapFile.PatchUInt64(original, (long)BitmapFile.ReadDirectory(original)[0].TableOffset, 1);
        await using (FormatNode node = await OpenAsync(original))
        {
            Assert.Equal([(0L, 10L << 20)], DirtyBitmapCommands.Find(node, "auto").GetDirtyRanges());
        }

        // The data cluster the patched entry pointed to is leaked (by the patch, for both tools).
        await AssertSameAsQemuIoAsync(original, [new("write", 1 << 20, 4096, 2)], leaksExpected: true);
    }

    [Theory]
    [InlineData("cluster_size=64k")]
    [InlineData("cluster_size=512")]
    [InlineData("cluster_size=2M")]
    public async Task MeasureSize_SameAsQemuImgMeasure(string options)
    {
        string image = CreateWithBitmaps("base.qcow2", "", "10M");
        QemuTools.Img("bitmap", "--add", "-g", "2G", image, "a-bitmap-with-a-longer-name");
        string output = QemuTools.Img("measure", "-O", "qcow2", "-o", options, image);
        long expected = long.Parse(output.Split('\n').Single(l => l.StartsWith("bitmaps size: ", StringComparison.Ordinal))[14..], CultureInfo.InvariantCulture);
        int clusterSize = options switch { "cluster_size=512" => 512, "cluster_size=2M" => 2 << 20, _ => 65536 };
        await using FormatNode node = await OpenAsync(image);
        Assert.Equal(expected, Qcow2Bitmaps.MeasureSize(((IPersistentBitmapHost)node).DirtyBitmaps, clusterSize));
    }

    // ------------------------------------------------------------ helpers

    /// <summary>Creates an image with three bitmaps: "auto" (default granularity), "off" (disabled, 128k), "fine" (512).</summary>
    private string CreateWithBitmaps(string name, string options, string size)
    {
        string image = _dir.File(name);
        var args = new List<string> { "create", "-q", "-f", "qcow2" };
        if (options.Length > 0)
        {
            args.AddRange(["-o", options]);
        }

        args.AddRange([image, size]);
        QemuTools.Img([.. args]);
        QemuTools.Img("bitmap", "--add", image, "auto");
        QemuTools.Img("bitmap", "--add", "-g", "128k", "--disable", image, "off");
        QemuTools.Img("bitmap", "--add", "-g", "512", image, "fine");
        return image;
    }

    /// <summary>Runs the operations through qemu-io and through qimg on copies of <paramref name="original"/>; the files must be identical.</summary>
    private async Task AssertSameAsQemuIoAsync(string original, Op[] ops, bool leaksExpected = false, bool sameLayout = true)
    {
        string qemu = Copy(original, "qemu.qcow2");
        string qimg = Copy(original, "qimg.qcow2");
        QemuTools.Io(qemu, ops.Length == 0 ? ["flush"] : [.. ops.Select(o => o.QemuIo)]);
        await using (FormatNode node = await OpenAsync(qimg, readOnly: false))
        {
            foreach (Op op in ops)
            {
                await op.ApplyAsync(node);
            }
        }

        if (sameLayout)
        {
            AssertSameFile(qemu, qimg);
        }
        else
        {
            Assert.Equal(BitmapFile.Describe(qemu), BitmapFile.Describe(qimg));
            QemuTools.Img("compare", "-q", qemu, qimg);
        }

        if (leaksExpected)
        {
            Assert.Equal(QemuTools.Check(qemu).Output, QemuTools.Check(qimg).Output.Replace("qimg.qcow2", "qemu.qcow2", StringComparison.Ordinal));
        }
        else
        {
            AssertCheckClean(qimg);
        }
    }

    private string Copy(string source, string name)
    {
        string path = _dir.File(name);
        File.Copy(source, path, overwrite: true);
        return path;
    }

    private static void AssertSameFile(string expected, string actual)
    {
        Assert.Equal(BitmapFile.Describe(expected), BitmapFile.Describe(actual));
        byte[] a = File.ReadAllBytes(expected);
        byte[] b = File.ReadAllBytes(actual);
        int index = a.AsSpan().CommonPrefixLength(b);
        Assert.True(index == a.Length && a.Length == b.Length, $"Files differ at byte {index} (sizes {a.Length} and {b.Length})");
    }

    private static void AssertCheckClean(string image)
    {
        (int code, string output) = QemuTools.Check(image);
        Assert.True(code == 0, $"qemu-img check failed ({code}):\n{output}");
        Assert.Contains("No errors were found on the image.", output, StringComparison.Ordinal);
    }

    private static byte[] Filled(byte value, long length)
    {
        byte[] data = new byte[length];
        data.AsSpan().Fill(value);
        return data;
    }
}
