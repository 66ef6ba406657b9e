using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Options;
using Qimg.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>
/// QEMU's image locks, both ways, against real qemu-io / qemu-nbd / qemu-img processes: the same lock bytes, the same
/// conflicts, the same messages.
/// </summary>
public sealed class FileLockingTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private string NewRaw(string name = "image.raw")
    {
        string path = _directory.File(name);
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", path, "1M");
        return path;
    }

    private string NewQcow2(string name = "image.qcow2")
    {
        string path = _directory.File(name);
        Tools.Check("qemu-img", "create", "-q", "-f", "qcow2", path, "1M");
        return path;
    }

    private static ValueTask<FormatNode> OpenRaw(string path, ImageOpenOptions? options = null) =>
        DiskImage.OpenAsync(path, (options ?? new ImageOpenOptions()) with { Format = "raw" });

    private static List<long> QemuIoLockBytes(string path, params string[] arguments)
    {
        using HeldImage held = HeldImage.Start(path, arguments);
        return Tools.LockedBytes(path);
    }

    // ---------------------------------------------------------------- which bytes

    public static TheoryData<string, string[]> QemuIoModes => new()
    {
        { "rw", ["-f", "raw"] },
        { "ro", ["-r", "-f", "raw"] },
        { "ro-force-share", ["-r", "-U", "-f", "raw"] },
    };

    [Theory]
    [MemberData(nameof(QemuIoModes))]
    public async Task Open_SameModeAsQemuIo_LocksTheSameBytes(string mode, string[] qemuIoArguments)
    {
        string path = NewRaw();
        List<long> expected = QemuIoLockBytes(path, qemuIoArguments);

        var options = new ImageOpenOptions { ReadOnly = mode != "rw", ForceShare = mode == "ro-force-share" };
        await using FormatNode image = await OpenRaw(path, options);

        Assert.Equal(expected, Tools.LockedBytes(path));
    }

    [Fact]
    public async Task Open_RawWithOffset_LocksLikeQemuIoImageOpts()
    {
        string path = NewRaw();
        List<long> expected;
        using (HeldImage.StartWithDevice(path, $"driver=raw,offset=512,file.filename={path}", "--image-opts"))
        {
            expected = Tools.LockedBytes(path);
        }

        Assert.Equal([100L, 101L, 203L], expected);

        var driverOptions = new OptionValues();
        driverOptions.Set("offset", "512");
        await using FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, DriverOptions = driverOptions });

        Assert.Equal(expected, Tools.LockedBytes(path));
    }

    [Theory]
    [InlineData(true, true, false, false, new long[0])] // info: BDRV_O_NO_IO
    [InlineData(true, false, false, true, new long[] { 100, 201, 203 })] // convert source: BDRV_O_NO_SHARE
    [InlineData(false, false, true, false, new long[] { 100, 101, 103 })] // resize: BDRV_O_RDWR | BDRV_O_RESIZE
    [InlineData(false, false, false, false, new long[] { 100, 101 })] // plain writable open
    public async Task Open_QemuImgFlags_LocksQemuBytes(bool readOnly, bool noIo, bool resize, bool noShare, long[] expected)
    {
        string path = NewRaw();
        var options = new ImageOpenOptions { ReadOnly = readOnly, NoIo = noIo, Resize = resize, NoShare = noShare };
        await using FormatNode image = await OpenRaw(path, options);

        Assert.Equal(expected, Tools.LockedBytes(path));
    }

    [Fact]
    public async Task Open_LockingOff_TakesNoLocks()
    {
        string path = NewRaw();
        await using FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, Locking = false });

        Assert.Empty(Tools.LockedBytes(path));
    }

    [Fact]
    public async Task Dispose_ReleasesLocks()
    {
        string path = NewRaw();
        FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false });
        Assert.NotEmpty(Tools.LockedBytes(path));

        await image.DisposeAsync();

        Assert.Empty(Tools.LockedBytes(path));
    }

    // ---------------------------------------------------------------- qimg refused by QEMU's locks

    [Fact]
    public async Task OpenWritable_WhileQemuIoWritesQcow2_FailsLikeQemuIo()
    {
        string path = NewQcow2();
        using HeldImage held = HeldImage.Start(path, "-f", "qcow2");
        ToolResult qemu = Tools.Run("qemu-io", "-f", "raw", "-c", "read 0 512", path);
        Assert.Equal(1, qemu.ExitCode);

        ImageOpenException error = await Assert.ThrowsAsync<ImageLockException>(async () =>
            await OpenRaw(path, new ImageOpenOptions { ReadOnly = false }));

        Assert.Equal($"qemu-io: can't open device {path}: {error.Message}\n", qemu.Stderr);
        Assert.Equal("Failed to get \"write\" lock\nIs another process using the image [" + path + "]?", error.Message);
    }

    [Fact]
    public async Task OpenNoShare_WhileQemuIoWritesQcow2_FailsLikeQemuImgConvert()
    {
        string path = NewQcow2();
        using HeldImage held = HeldImage.Start(path, "-f", "qcow2");
        ToolResult qemu = Tools.Run("qemu-img", "convert", "-f", "raw", "-O", "raw", path, _directory.File("out.raw"));
        Assert.Equal(1, qemu.ExitCode);

        ImageOpenException error = await Assert.ThrowsAsync<ImageLockException>(async () =>
            await OpenRaw(path, new ImageOpenOptions { NoShare = true }));

        Assert.Equal($"qemu-img: Could not open '{path}': {error.Message}\n", qemu.Stderr);
        Assert.StartsWith("Failed to get shared \"write\" lock\n", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenReadOnly_WhileQemuIoWritesQcow2_Succeeds()
    {
        string path = NewQcow2();
        using HeldImage held = HeldImage.Start(path, "-f", "qcow2");

        await using FormatNode image = await OpenRaw(path);

        Assert.Equal((new FileInfo(path).Length + 511) & ~511L, image.Length);
    }

    [Fact]
    public async Task OpenNoShareWithForceShare_WhileQemuIoWritesQcow2_Succeeds()
    {
        string path = NewQcow2();
        using HeldImage held = HeldImage.Start(path, "-f", "qcow2");

        await using FormatNode image = await OpenRaw(path, new ImageOpenOptions { NoShare = true, ForceShare = true });
        byte[] header = new byte[4];
        await image.ReadAsync(0, header);

        Assert.Equal(new byte[] { (byte)'Q', (byte)'F', (byte)'I', 0xfb }, header);
    }

    [Fact]
    public async Task OpenWritableWithForceShare_FailsLikeQemu()
    {
        string path = NewRaw();
        ToolResult qemu = Tools.Run("qemu-io", "-U", "-f", "raw", "-c", "read 0 512", path);

        ImageOpenException error = await Assert.ThrowsAsync<ImageOpenException>(async () =>
            await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, ForceShare = true }));

        Assert.Equal($"qemu-io: can't open device {path}: {error.Message}\n", qemu.Stderr);
        Assert.Equal("force-share=on can only be used with read-only images", error.Message);
    }

    [Fact]
    public async Task OpenResize_WhileQemuNbdExports_FailsLikeQemuImgResize()
    {
        string path = NewRaw();
        string socket = _directory.File("nbd.sock");
        string pidFile = _directory.File("nbd.pid");
        Tools.Check("qemu-nbd", "-f", "raw", "--fork", "--pid-file", pidFile, "-k", socket, path);
        try
        {
            ToolResult qemu = Tools.Run("qemu-img", "resize", "-f", "raw", path, "2M");
            Assert.Equal(1, qemu.ExitCode);

            ImageOpenException error = await Assert.ThrowsAsync<ImageLockException>(async () =>
                await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, Resize = true }));

            Assert.Equal($"qemu-img: Could not open '{path}': {error.Message}\n", qemu.Stderr);
            Assert.StartsWith("Failed to get \"resize\" lock\n", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            StopDaemon(pidFile);
        }
    }

    /// <summary>Stops a forked qemu-nbd and waits until it is gone (SIGKILL if SIGTERM is not enough).</summary>
    private static void StopDaemon(string pidFile)
    {
        if (!System.IO.File.Exists(pidFile))
        {
            return;
        }

        string pid = System.IO.File.ReadAllText(pidFile).Trim();
        Tools.Run("kill", pid);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (IsRunning(pid) && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(20);
        }

        if (IsRunning(pid))
        {
            Tools.Run("kill", "-9", pid);
        }
    }

    /// <summary>True while the process exists and is not a zombie (a container's init may be slow to reap it).</summary>
    private static bool IsRunning(string pid)
    {
        try
        {
            string stat = System.IO.File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z') is false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Create_WhileQemuIoWritesQcow2_FailsLikeQemuImgCreateAndKeepsTheFile()
    {
        string path = NewQcow2();
        byte[] before = System.IO.File.ReadAllBytes(path);
        using HeldImage held = HeldImage.Start(path, "-f", "qcow2");
        ToolResult qemu = Tools.Run("qemu-img", "create", "-q", "-f", "raw", path, "2M");
        Assert.Equal(1, qemu.ExitCode);

        ImageLockException error = await Assert.ThrowsAsync<ImageLockException>(async () =>
            await FileProtocol.Instance.CreateAsync(path, 2 << 20, new OptionValues()));

        Assert.Equal($"qemu-img: {path}: {error.Message}\n", qemu.Stderr);
        Assert.Equal(before, System.IO.File.ReadAllBytes(path));
    }

    // ---------------------------------------------------------------- QEMU refused by qimg's locks

    [Fact]
    public async Task QemuIoWritable_WhileQimgHoldsNoShare_FailsWithWriteLockMessage()
    {
        string path = NewRaw();
        await using FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, NoShare = true });

        ToolResult writer = Tools.Run("qemu-io", "-f", "raw", "-c", "read 0 512", path);
        ToolResult reader = Tools.Run("qemu-io", "-r", "-f", "raw", "-c", "read 0 512", path);

        Assert.Equal(1, writer.ExitCode);
        Assert.Equal($"qemu-io: can't open device {path}: Failed to get \"write\" lock\nIs another process using the image [{path}]?\n", writer.Stderr);
        Assert.Equal(0, reader.ExitCode);
    }

    [Fact]
    public async Task QemuImgConvert_WhileQimgWrites_FailsWithSharedWriteLockMessage()
    {
        string path = NewRaw();
        await using FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false });

        ToolResult convert = Tools.Run("qemu-img", "convert", "-f", "raw", "-O", "raw", path, _directory.File("out.raw"));
        ToolResult info = Tools.Run("qemu-img", "info", "-f", "raw", path);

        Assert.Equal(1, convert.ExitCode);
        Assert.Equal($"qemu-img: Could not open '{path}': Failed to get shared \"write\" lock\nIs another process using the image [{path}]?\n", convert.Stderr);
        Assert.Equal(0, info.ExitCode);
    }

    [Fact]
    public async Task QemuIoWithOffset_WhileQimgResizes_FailsWithSharedResizeLockMessage()
    {
        string path = NewRaw();
        await using FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, Resize = true });

        ToolResult qemu = Tools.Run("qemu-io", "--image-opts", "-c", "read 0 512", $"driver=raw,offset=512,file.filename={path}");

        Assert.Equal(1, qemu.ExitCode);
        Assert.Equal($"qemu-io: can't open: Failed to get shared \"resize\" lock\nIs another process using the image [{path}]?\n", qemu.Stderr);
    }

    [Fact]
    public async Task QemuIo_AfterQimgClosed_Succeeds()
    {
        string path = NewRaw();
        FormatNode image = await OpenRaw(path, new ImageOpenOptions { ReadOnly = false, NoShare = true });
        Assert.Equal(1, Tools.Run("qemu-io", "-f", "raw", "-c", "read 0 512", path).ExitCode);

        await image.DisposeAsync();

        Assert.Equal(0, Tools.Run("qemu-io", "-f", "raw", "-c", "read 0 512", path).ExitCode);
    }

    [Fact]
    public async Task SetPermissions_Conflict_KeepsThePreviousLocks()
    {
        string path = NewQcow2();
        await using FormatNode image = await OpenRaw(path);
        List<long> before = Tools.LockedBytes(path);
        using HeldImage held = HeldImage.Start(path, "-f", "qcow2");
        List<long> withQemu = Tools.LockedBytes(path);

        Assert.Throws<ImageLockException>(() => image.File.SetPermissions(
            new PermissionPair(BlockPermissions.ConsistentRead | BlockPermissions.Write, BlockPermissions.All)));

        Assert.Equal(withQemu, Tools.LockedBytes(path));
        Assert.Equal([100L], before);
    }
}
