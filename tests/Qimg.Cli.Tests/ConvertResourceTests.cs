using System.Diagnostics;
using System.Runtime.InteropServices;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// convert under pressure: bounded memory on a huge sparse image, and targets that cannot be written (a full file
/// system, a read-only one) failing with qemu-img's one line while the source stays untouched.
/// </summary>
public class ConvertResourceTests
{
    [Fact]
    public void ATebibyteImageWithAGibibyteOfDataConvertsInUnder200MiB()
    {
        using var directory = new TempDirectory();
        string source = directory.File("huge.raw");
        Tools.QemuImgOk("create", "-q", "-f", "raw", source, "1T");
        // 1 GiB of data in 256 extents of 4 MiB spread over the whole terabyte.
        var writes = new List<string> { "-f", "raw" };
        for (int i = 0; i < 256; i++)
        {
            writes.Add("-c");
            writes.Add($"write -P {i % 250 + 1} {(long)i * (4L << 30)} 4M");
        }

        writes.Add(source);
        Tools.QemuIo([.. writes]);

        string target = directory.File("huge.qcow2");
        (int exitCode, long maxRssKiB) = RunQimgProcess("convert", "-O", "qcow2", source, target);
        Assert.Equal(0, exitCode);
        Assert.True(maxRssKiB < 200 * 1024, $"peak RSS {maxRssKiB} KiB");
        Tools.QemuImgOk("compare", "-f", "raw", "-F", "qcow2", source, target);
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("qcow2")]
    public void AFullFileSystemGivesOneLineAndExitOne(string format)
    {
        using var directory = new TempDirectory();
        string source = directory.File("source.raw");
        Tools.QemuImgOk("create", "-q", "-f", "raw", source, "16M");
        Tools.QemuIo("-f", "raw", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 8M 4M", source);
        string before = Checksum(source);
        // One file system each: a failed conversion leaves its partial target behind.
        using var qemuMount = TmpfsMount.Create(directory.File("qemu"), "size=2m");
        using var qimgMount = TmpfsMount.Create(directory.File("qimg"), "size=2m");
        CommandResult qemu = Golden.Normalize(Tools.QemuImg("convert", "-O", format, source, qemuMount.File("t.img")));
        CommandResult qimg = Tools.Qimg("convert", "-O", format, source, qimgMount.File("t.img"));
        Assert.Equal(1, qemu.ExitCode);
        Assert.Equal(1, qimg.ExitCode);
        Assert.Equal(string.Empty, qimg.Stdout);
        // The same one line as qemu-img; which request meets the full disk first can vary by a chunk.
        const string pattern = @"^qimg: error while writing at byte \d+: No space left on device\n$";
        Assert.Matches(pattern, qemu.Stderr);
        Assert.Matches(pattern, qimg.Stderr);
        Assert.Equal(before, Checksum(source));
    }

    [Fact]
    public void AReadOnlyFileSystemGivesOneLineAndExitOne()
    {
        using var directory = new TempDirectory();
        string source = directory.File("source.raw");
        Tools.QemuImgOk("create", "-q", "-f", "raw", source, "1M");
        using var mount = TmpfsMount.Create(directory.File("ro"), "size=2m,ro");
        CommandResult qemu = Golden.Normalize(Tools.QemuImg("convert", "-O", "qcow2", source, mount.File("t.qcow2")));
        CommandResult qimg = Tools.Qimg("convert", "-O", "qcow2", source, mount.File("t.qcow2"));
        Assert.Equal(qemu, qimg);
        Assert.Equal(1, qimg.ExitCode);
    }

    [Fact]
    public async Task SigUsr1PrintsTheProgressOnceWithoutDashP()
    {
        using var directory = new TempDirectory();
        string source = directory.File("source.raw");
        Tools.QemuImgOk("create", "-q", "-f", "raw", source, "32M");
        Tools.QemuIo("-f", "raw", "-c", "write -P 0x11 0 32M", source);
        string cli = Path.Combine(AppContext.BaseDirectory, "qimg.dll");
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in new[] { "exec", cli, "convert", "-r", "8M", "-O", "raw", source, directory.File("target.raw") })
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        // The rate limit makes the copy take about 4 s; ask for progress once it is under way.
        await Task.Delay(1500);
        Tools.Run("kill", ["-USR1", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(string.Empty, await stdout);
        Assert.Matches(@"^    \(\d{1,3}\.\d\d/100%\)\n$", await stderr);
    }

    private static string Checksum(string path) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>Runs the qimg CLI as a child process and returns its exit code and peak resident set size.</summary>
    private static (int ExitCode, long MaxRssKiB) RunQimgProcess(params string[] args)
    {
        string cli = Path.Combine(AppContext.BaseDirectory, "qimg.dll");
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(cli);
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        // Sample the child's peak RSS while it runs (VmHWM): getrusage would mix in every other child of the test host.
        long peak = 0;
        while (!process.WaitForExit(20))
        {
            peak = Math.Max(peak, ReadHighWaterMark(process.Id));
        }

        Assert.True(process.ExitCode == 0, stderr.Result + stdout.Result);
        return (process.ExitCode, peak);
    }

    private static long ReadHighWaterMark(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
            // The process ended between two samples.
        }

        return 0;
    }

    /// <summary>A small tmpfs mounted for one test (the tests run as root, as CI does).</summary>
    private sealed class TmpfsMount : IDisposable
    {
        private readonly string _path;

        private TmpfsMount(string path) => _path = path;

        public static TmpfsMount Create(string path, string options)
        {
            Directory.CreateDirectory(path);
            CommandResult mount = Tools.Run("mount", ["-t", "tmpfs", "-o", options, "tmpfs", path]);
            Assert.True(mount.ExitCode == 0, $"mounting a tmpfs needs root: {mount.Stderr}");
            return new TmpfsMount(path);
        }

        public string File(string name) => Path.Combine(_path, name);

        public void Dispose() => Tools.Run("umount", [_path]);
    }
}
