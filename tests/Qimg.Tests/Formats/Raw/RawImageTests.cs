using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Formats.Raw;
using Qimg.Options;
using Qimg.Tests.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Raw;

/// <summary>The raw format: probing restrictions, offset/size windows, pass-through of I/O and block status.</summary>
public sealed class RawImageTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string NewRaw(string name = "image.raw", string size = "1M")
    {
        string path = _directory.File(name);
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", path, size);
        return path;
    }

    private static byte[] Qcow2Header(int length)
    {
        byte[] header = new byte[length];
        header[0] = (byte)'Q';
        header[1] = (byte)'F';
        header[2] = (byte)'I';
        header[3] = 0xfb;
        header[7] = 3;
        return header;
    }

    // ---------------------------------------------------------------- probing

    [Fact]
    public async Task OpenProbedWritable_WarnsWithQemuText()
    {
        string path = NewRaw();
        ToolResult qemu = Tools.Run("qemu-io", "-c", "read 0 1", path);
        var warnings = new List<string>();

        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = false, Warning = warnings.Add });

        string warning = Assert.Single(warnings);
        Assert.Equal(qemu.Stderr, warning + "\n");
        Assert.Equal("raw", image.DriverName);
        Assert.True(((RawImage)image).Probed);
    }

    [Theory]
    [InlineData(true, null)]
    [InlineData(false, "raw")]
    public async Task OpenReadOnlyOrExplicit_DoesNotWarn(bool readOnly, string? format)
    {
        string path = NewRaw();
        var warnings = new List<string>();

        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = readOnly, Format = format, Warning = warnings.Add });

        Assert.Empty(warnings);
    }

    [Theory]
    [InlineData(0, 512)]
    [InlineData(0, 8)]
    [InlineData(0, 70000)]
    public async Task WriteProbed_Block0BecomingQcow2_RefusedLikeQemuIo(int offset, int length)
    {
        string qemuPath = NewRaw("qemu.raw");
        string path = NewRaw("qimg.raw");
        byte[] header = Qcow2Header(length);
        string source = _directory.File("header.bin");
        await System.IO.File.WriteAllBytesAsync(source, header);
        ToolResult qemu = Tools.Run("qemu-io", "-c", $"write -s {source} {offset} {length}", qemuPath);
        Assert.Equal("write failed: Operation not permitted\n", qemu.Stdout);

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = false }))
        {
            IOException error = await Assert.ThrowsAsync<IOException>(async () => await image.WriteAsync(offset, header));
            Assert.Equal("Operation not permitted", error.Message);
            Assert.Equal(1, error.HResult);
        }

        Assert.Equal(System.IO.File.ReadAllBytes(qemuPath), System.IO.File.ReadAllBytes(path));
        Assert.Equal(new byte[1 << 20], System.IO.File.ReadAllBytes(path));
    }

    [Fact]
    public async Task WriteProbed_Block0StayingRaw_IsWritten()
    {
        string path = NewRaw();
        byte[] data = Enumerable.Range(0, 700).Select(i => (byte)(i * 7)).ToArray();

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = false }))
        {
            await image.WriteAsync(3, data);
            byte[] back = new byte[700];
            await image.ReadAsync(3, back);
            Assert.Equal(data, back);
        }

        Assert.Equal(data, System.IO.File.ReadAllBytes(path)[3..703]);
    }

    [Theory]
    [InlineData("raw", 0)]
    [InlineData(null, 512)]
    public async Task WriteQcow2Magic_ExplicitFormatOrPastBlock0_IsWritten(string? format, int offset)
    {
        string path = NewRaw();
        byte[] header = Qcow2Header(512);

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = false, Format = format }))
        {
            await image.WriteAsync(offset, header);
        }

        Assert.Equal(header, System.IO.File.ReadAllBytes(path)[offset..(offset + 512)]);
    }

    [Fact]
    public async Task Probed_RequestsAreSectorAligned()
    {
        string path = NewRaw();
        await using FormatNode probed = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = false });
        await using FormatNode given = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw" });

        Assert.Equal(512, probed.Limits.RequestAlignment);
        Assert.Equal(1, given.Limits.RequestAlignment);
    }

    // ---------------------------------------------------------------- offset and size

    private static OptionValues Window(string? offset, string? size)
    {
        var options = new OptionValues();
        if (offset is not null)
        {
            options.Set("offset", offset);
        }

        if (size is not null)
        {
            options.Set("size", size);
        }

        return options;
    }

    [Theory]
    [InlineData("4096", "65536")]
    [InlineData("4096", null)]
    [InlineData("1000", "512")]
    [InlineData(null, "131072")]
    public async Task OffsetAndSize_BlockStatusMatchesQemuImgMap(string? offset, string? size)
    {
        string path = _directory.File("window.raw");
        FileNodeBlockStatusTests.Build(path, "truncate 1048576;dd 8192 4096;dd 69632 100000");
        string imageOptions = "driver=raw" + (offset is null ? "" : ",offset=" + offset) + (size is null ? "" : ",size=" + size) + ",file.filename=" + path;
        List<string> expected = Tools.ParseMap(Tools.Check("qemu-img", "map", "--output=json", "--image-opts", imageOptions));

        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", DriverOptions = Window(offset, size) });

        Assert.Equal(expected, await Tools.QimgMap(image));
    }

    [Fact]
    public async Task OffsetAndSize_ReadsAndWritesTheWindow()
    {
        string path = _directory.File("window.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 65536");
        byte[] file = System.IO.File.ReadAllBytes(path);

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false, DriverOptions = Window("1000", "4096") }))
        {
            Assert.Equal(4096L, image.Length);
            byte[] buffer = new byte[5000];
            await image.ReadAsync(0, buffer);
            Assert.Equal(file[1000..5096], buffer[..4096]);
            Assert.All(buffer[4096..], b => Assert.Equal(0, b));

            await image.WriteAsync(4000, new byte[96]);
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await image.WriteAsync(4000, new byte[97]));
            await Assert.ThrowsAsync<NotSupportedException>(async () => await image.TruncateAsync(8192));
        }

        byte[] after = System.IO.File.ReadAllBytes(path);
        Assert.Equal(new byte[96], after[5000..5096]);
        Assert.Equal(file[5096..], after[5096..]);
        Assert.Equal(file[..5000], after[..5000]);
    }

    [Theory]
    [InlineData("2M", null)]
    [InlineData("512", "1000")]
    [InlineData("512", "1M")]
    public async Task OffsetAndSize_Invalid_FailsLikeQemuIo(string offset, string? size)
    {
        string path = NewRaw();
        string imageOptions = $"driver=raw,offset={offset}" + (size is null ? "" : ",size=" + size) + ",file.filename=" + path;
        ToolResult qemu = Tools.Run("qemu-io", "--image-opts", "-c", "read 0 1", imageOptions);

        ImageOpenException error = await Assert.ThrowsAsync<ImageOpenException>(async () =>
            await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", DriverOptions = Window(offset, size) }));

        Assert.Equal($"qemu-io: can't open: {error.Message}\n", qemu.Stderr);
    }

    // ---------------------------------------------------------------- pass-through

    [Fact]
    public async Task Length_FollowsTheFile()
    {
        string path = NewRaw(size: "4096");
        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false, Resize = true });

        await image.TruncateAsync(10000);

        Assert.Equal(10240L, image.Length);
        Assert.Equal(10000L, new FileInfo(path).Length);
    }

    [Fact]
    public async Task Create_UsesTheFileProtocolOptions()
    {
        Assert.Equal(["size"], RawDriver.Instance.CreateOptions.Select(o => o.Name));
        Assert.Equal(["size", "nocow", "preallocation", "extent_size_hint"],
            Qimg.Protocols.File.FileProtocol.Instance.CreateOptions.Select(o => o.Name));

        string path = _directory.File("created.raw");
        var options = new OptionValues();
        options.Set("preallocation", "full");
        await RawDriver.Instance.CreateAsync(new ImageCreateRequest(path, 100000, options, Qimg.Protocols.File.FileProtocol.Instance,
            FormatRegistry.Default, ImplicitOpenPolicy.Permissive));

        Assert.Equal(100352L, new FileInfo(path).Length);
    }
}
