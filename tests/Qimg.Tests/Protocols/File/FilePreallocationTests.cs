using Qimg.Block;
using Qimg.Formats;
using Qimg.Formats.Raw;
using Qimg.Options;
using Qimg.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>
/// Creation and growing truncation with preallocation off/falloc/full against `qemu-img create -f raw -o
/// preallocation=…` and `qemu-img resize --preallocation=…`: same size, same allocation (st_blocks), same errors.
/// </summary>
public sealed class FilePreallocationTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static OptionValues Options(params (string Key, string Value)[] pairs)
    {
        var options = new OptionValues();
        foreach ((string key, string value) in pairs)
        {
            options.Set(key, value);
        }

        return options;
    }

    private static ValueTask CreateRaw(string path, long size, OptionValues options, Action<string>? warning = null) =>
        RawDriver.Instance.CreateAsync(
            new ImageCreateRequest(path, size, options, FileProtocol.Instance, FormatRegistry.Default, ImplicitOpenPolicy.Permissive)
            {
                Warning = warning,
            });

    [Theory]
    [InlineData("off", 0L)]
    [InlineData("off", 1048576L)]
    [InlineData("off", 1000L)]
    [InlineData("off", 3000000L)]
    [InlineData("falloc", 0L)]
    [InlineData("falloc", 1048576L)]
    [InlineData("falloc", 3000000L)]
    [InlineData("full", 0L)]
    [InlineData("full", 1048576L)]
    [InlineData("full", 3000000L)]
    [InlineData(null, 2048L)]
    public async Task Create_Preallocation_MatchesQemuImgCreate(string? preallocation, long size)
    {
        string expectedPath = _directory.File("qemu.raw");
        string actualPath = _directory.File("qimg.raw");
        var arguments = new List<string> { "create", "-q", "-f", "raw" };
        if (preallocation is not null)
        {
            arguments.AddRange(["-o", "preallocation=" + preallocation]);
        }

        Tools.Check("qemu-img", [.. arguments, expectedPath, size.ToString()]);
        OptionValues options = preallocation is null ? new OptionValues() : Options(("preallocation", preallocation));

        await CreateRaw(actualPath, size, options);

        Assert.Equal(Tools.Stat(expectedPath), Tools.Stat(actualPath));
        Assert.Equal(System.IO.File.ReadAllBytes(expectedPath), System.IO.File.ReadAllBytes(actualPath));
    }

    [Fact]
    public async Task Create_ExistingFile_TruncatesAndReallocates()
    {
        string path = _directory.File("existing.raw");
        await System.IO.File.WriteAllBytesAsync(path, Enumerable.Repeat((byte)0xaa, 1 << 20).ToArray());

        await CreateRaw(path, 65536, new OptionValues());

        Assert.Equal(65536L, Tools.Stat(path).Size);
        Assert.Equal(new byte[65536], await System.IO.File.ReadAllBytesAsync(path));
    }

    [Theory]
    [InlineData("preallocation=foo", "invalid parameter value: foo")]
    [InlineData("extent_size_hint=8G", "Extent size hint is too large")]
    public async Task Create_InvalidOption_FailsLikeQemuImg(string option, string message)
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        ToolResult qemu = Tools.Run("qemu-img", "create", "-q", "-f", "raw", "-o", option, qemuPath, "1M");
        string[] pair = option.Split('=');

        OptionException error = await Assert.ThrowsAsync<OptionException>(async () => await CreateRaw(path, 1 << 20, Options((pair[0], pair[1]))));

        Assert.Equal(message, error.Message);
        Assert.Equal($"qemu-img: {qemuPath}: {message}\n", qemu.Stderr);
        Assert.Equal(System.IO.File.Exists(qemuPath), System.IO.File.Exists(path));
    }

    [Fact]
    public async Task Create_MetadataPreallocation_FailsLikeQemuImgAfterCreatingTheFile()
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        ToolResult qemu = Tools.Run("qemu-img", "create", "-q", "-f", "raw", "-o", "preallocation=metadata", qemuPath, "1M");

        FileIOException error = await Assert.ThrowsAsync<FileIOException>(async () => await CreateRaw(path, 1 << 20, Options(("preallocation", "metadata"))));

        Assert.Equal($"qemu-img: {qemuPath}: {error.Message}\n", qemu.Stderr);
        Assert.Equal("Unsupported preallocation mode: metadata", error.Message);
        Assert.Equal(Tools.Stat(qemuPath), Tools.Stat(path));
    }

    [Fact]
    public async Task Create_MissingDirectory_FailsLikeQemuImg()
    {
        string qemuPath = _directory.File("missing/qemu.raw");
        string path = _directory.File("missing/qimg.raw");
        ToolResult qemu = Tools.Run("qemu-img", "create", "-q", "-f", "raw", qemuPath, "1M");

        IOException error = await Assert.ThrowsAsync<Qimg.Diagnostics.ImageOpenException>(async () => await CreateRaw(path, 1 << 20, new OptionValues()));

        Assert.Equal($"Could not create '{path}': No such file or directory", error.Message);
        Assert.Equal($"qemu-img: {qemuPath}: Could not create '{qemuPath}': No such file or directory\n", qemu.Stderr);
    }

    [Fact]
    public async Task Create_NocowAndExtentSizeHint_AcceptedWithoutWarningWhereQemuGivesNone()
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        ToolResult qemu = Tools.Run("qemu-img", "create", "-q", "-f", "raw", "-o", "nocow=on,extent_size_hint=256k", qemuPath, "1M");
        var warnings = new List<string>();

        await CreateRaw(path, 1 << 20, Options(("nocow", "on"), ("extent_size_hint", "256k")), warnings.Add);

        // QEMU warns "Failed to set extent size hint: …" only when the file system refuses it; on the same file
        // system, qimg warns exactly when qemu-img does.
        Assert.Equal(0, qemu.ExitCode);
        Assert.Equal(qemu.Stderr.Length == 0, warnings.Count == 0);
        Assert.Equal(Tools.Stat(qemuPath), Tools.Stat(path));
    }

    [Theory]
    [InlineData("off")]
    [InlineData("falloc")]
    [InlineData("full")]
    public async Task Truncate_Grow_MatchesQemuImgResize(string preallocation)
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", qemuPath, "1M");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", path, "1M");
        Tools.Check("qemu-img", "resize", "-q", "-f", "raw", "--preallocation=" + preallocation, qemuPath, "3000000");
        Assert.True(PreallocationModeNames.TryParse(preallocation, out PreallocationMode mode));

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false, Resize = true }))
        {
            await image.TruncateAsync(3000000, mode);
            Assert.Equal(3000000L + 512 - 3000000L % 512, image.Length);
        }

        Assert.Equal(Tools.Stat(qemuPath), Tools.Stat(path));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Truncate_GrowFromEmpty_AllocatesTheFirstBlockLikeQemu(bool direct)
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", qemuPath, "0");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", path, "0");
        Tools.Check("qemu-img", "resize", "-q", "-f", "raw", qemuPath, "1M");

        var options = new ImageOpenOptions { Format = "raw", ReadOnly = false, Resize = true, Cache = new CacheMode(direct, false, false) };
        await using (FormatNode image = await DiskImage.OpenAsync(path, options))
        {
            await image.TruncateAsync(1 << 20);
        }

        Assert.Equal(Tools.Stat(qemuPath), Tools.Stat(path));
    }

    [Fact]
    public async Task Truncate_ShrinkWithPreallocation_Fails()
    {
        string path = _directory.File("qimg.raw");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", path, "1M");
        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false, Resize = true });

        FileIOException error = await Assert.ThrowsAsync<FileIOException>(async () => await image.TruncateAsync(4096, PreallocationMode.Falloc));

        Assert.Equal("Cannot use preallocation for shrinking files", error.Message);
        Assert.Equal(1L << 20, image.Length);
    }

    [Fact]
    public async Task Truncate_MetadataPreallocation_FailsLikeQemuImgResize()
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", qemuPath, "1M");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", path, "1M");
        ToolResult qemu = Tools.Run("qemu-img", "resize", "-q", "-f", "raw", "--preallocation=metadata", qemuPath, "2M");
        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false, Resize = true });

        FileIOException error = await Assert.ThrowsAsync<FileIOException>(async () => await image.TruncateAsync(2 << 20, PreallocationMode.Metadata));

        Assert.Equal($"qemu-img: {error.Message}\n", qemu.Stderr);
        Assert.Equal(Tools.Stat(qemuPath), Tools.Stat(path));
    }

    [Fact]
    public async Task Truncate_Shrink_CutsTheFile()
    {
        string path = _directory.File("qimg.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 65536");
        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false, Resize = true });

        await image.TruncateAsync(1000);

        Assert.Equal(1000L, Tools.Stat(path).Size);
        Assert.Equal(1024L, image.Length);
    }
}
