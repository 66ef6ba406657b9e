using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// The name qimg goes by (argv[0]'s basename, as QEMU's tools) and what it writes to a terminal: installed as qemu-img
/// through a link it says "qemu-img: …" everywhere; run with stdin on a terminal it writes no escape sequences.
/// </summary>
public class ProgramNameTests
{
    private static string AppHost => Path.Combine(AppContext.BaseDirectory, "qimg");

    [Fact]
    public void Version_UnderQemuImgName_FirstLineIsOneQemuImgVersionParsersAccept()
    {
        CommandResult qemu = Tools.QemuImg("--version");
        CommandResult actual = Tools.QimgNamed("qemu-img", "--version");
        Assert.Equal(0, actual.ExitCode);
        string[] lines = actual.Stdout.Split('\n');
        Assert.Equal("qemu-img version 7.2.22 (qimg 0.1.0)", lines[0]);
        // The pattern version parsers use on qemu-img's first line (major.minor.micro after "qemu-img version").
        Match version = Regex.Match(lines[0], @"^qemu-img version (\d+)\.(\d+)\.(\d+)");
        Assert.True(version.Success);
        Assert.Equal(Regex.Match(qemu.Stdout, @"^qemu-img version (\d+)\.(\d+)").Value, $"qemu-img version {version.Groups[1]}.{version.Groups[2]}");
        Assert.Equal(qemu.Stdout.Split('\n')[1], lines[1]);
        Assert.Equal(3, lines.Length);
    }

    [Fact]
    public void Version_UnderItsOwnName_IsQimgsVersion()
    {
        CommandResult actual = Tools.QimgNamed("qimg", "-V");
        Assert.StartsWith("qimg version 0.1.0 (compatible with qemu-img version 7.2)\n", actual.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_UnderQemuImgName_UsageSaysQemuImg()
    {
        string qemu = Tools.QemuImg("--help").Stdout;
        string actual = Tools.QimgNamed("qemu-img", "--help").Stdout;
        string usage = qemu.Split('\n')[2];
        Assert.Equal("usage: qemu-img [standard options] command [command options]", usage);
        Assert.Equal(usage, actual.Split('\n')[2]);
        Assert.Contains("contain only zeros for qemu-img to create a sparse image", actual, StringComparison.Ordinal);
        Assert.DoesNotContain("qimg [", actual, StringComparison.Ordinal);
    }

    [Fact]
    public void LibraryHint_NamesTheInvokedProgram()
    {
        using var directory = new TempDirectory();
        string image = directory.File("image.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", image, "8M");
        Tools.QemuImgOk("bitmap", "--add", image, "b0");
        // Clear the "bitmaps" autoclear bit: the image now looks modified by a program without bitmap support.
        byte[] header = File.ReadAllBytes(image);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(88), 0);
        using (var stream = new FileStream(image, FileMode.Open, FileAccess.Write))
        {
            stream.Write(header, 0, 512);
        }

        // qemu-img ends the warning without a newline; qimg ends the line.
        string qemu = Tools.QemuImg("info", "-U", image).Stderr + "\n";
        Assert.Contains("run 'qemu-img check -r' on the image file", qemu, StringComparison.Ordinal);
        Assert.Equal(qemu, Tools.QimgNamed("qemu-img", "info", "-U", image).Stderr);
        Assert.Equal(qemu.Replace("qemu-img", "qimg", StringComparison.Ordinal), Tools.QimgNamed("qimg", "info", "-U", image).Stderr);
    }

    [Theory]
    [InlineData("/usr/bin/qemu-img", "qemu-img")]
    [InlineData("qemu-img", "qemu-img")]
    [InlineData("./bin/qimg", "qimg")]
    [InlineData("dir/", "qimg")]
    public void FromArgv0_TakesTheBasename(string argv0, string expected) => Assert.Equal(expected, ProgramIdentity.FromArgv0(argv0));

    [Theory]
    [InlineData("You can force-remove all 3 overhanging snapshots with qemu-img check -r all", "You can force-remove all 3 overhanging snapshots with qimg check -r all")]
    [InlineData("Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it", "Try --skip-broken-bitmaps, or use 'qimg bitmap --remove' to delete it")]
    [InlineData("qemu-img: Lost persistent bitmaps during inactivation of node 'a': x", "qimg: Lost persistent bitmaps during inactivation of node 'a': x")]
    [InlineData("x\nqemu-img: y", "x\nqimg: y")]
    [InlineData("Could not open '/tmp/qemu-img.qcow2': No such file", "Could not open '/tmp/qemu-img.qcow2': No such file")]
    [InlineData("Could not open 'qemu-img: x'", "Could not open 'qemu-img: x'")]
    [InlineData("the qemu-img way", "the qemu-img way")]
    public void Rename_ChangesAdviceAndPrefixesOnly(string text, string expected)
    {
        Assert.Equal(expected, ProgramIdentity.Rename(text, "qimg"));
        Assert.Equal(text, ProgramIdentity.Rename(text, "qemu-img"));
    }

    [Fact]
    public void InstalledAsQemuImgThroughALink_SaysQemuImg()
    {
        using var directory = new TempDirectory();
        string link = directory.File("qemu-img");
        File.CreateSymbolicLink(link, AppHost);
        string[][] cases = [["info", directory.File("missing.qcow2")], ["--bogus"], ["nope"], ["info"]];
        foreach (string[] args in cases)
        {
            Assert.Equal(Tools.QemuImg(args), Tools.Run(link, args));
        }

        Assert.StartsWith("qemu-img version 7.2.22 (qimg ", Tools.Run(link, ["--version"]).Stdout, StringComparison.Ordinal);

        string own = directory.File("qimg");
        File.CreateSymbolicLink(own, AppHost);
        Assert.Equal($"qimg: Could not open '{directory.File("x")}': Could not open '{directory.File("x")}': No such file or directory\n", Tools.Run(own, ["info", directory.File("x")]).Stderr);
        Assert.StartsWith("qimg version ", Tools.Run(own, ["--version"]).Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void UnderTheDotnetHost_SaysQimg()
    {
        CommandResult result = Tools.Run("dotnet", ["exec", Path.Combine(AppContext.BaseDirectory, "qimg.dll"), "--bogus"]);
        Assert.Equal(new CommandResult(1, string.Empty, "qimg: unrecognized option '--bogus'\nTry 'qimg --help' for more information\n"), result);
    }

    [Fact]
    public void OnATerminal_WritesNoEscapeSequences()
    {
        using var directory = new TempDirectory();
        string image = directory.File("image.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", image, "4M");
        Tools.QemuIo("-f", "qcow2", "-c", "write 0 1M", image);

        // The harness itself: qemu-img through script shows its output and no escapes.
        string reference = OnTerminal("qemu-img", "info", image);
        Assert.Contains("file format: qcow2", reference, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', reference);

        string[][] runs =
        [
            ["info", image],
            ["map", "--output=json", image],
            ["convert", "-p", "-O", "raw", image, directory.File("copy.raw")],
            ["compare", "-p", image, directory.File("copy.raw")],
            ["info", directory.File("missing.qcow2")],
        ];
        foreach (string[] args in runs)
        {
            string output = OnTerminal(AppHost, args);
            Assert.True(output.Length > 0, string.Join(' ', args));
            Assert.False(output.Contains('\u001b'), $"qimg {string.Join(' ', args)} wrote escape sequences: {output}");
        }
    }

    /// <summary>Runs a program with stdin, stdout and stderr on a new pseudo-terminal (util-linux script) and returns what it wrote.</summary>
    private static string OnTerminal(string program, params string[] args)
    {
        string command = string.Join(' ', new[] { program }.Concat(args).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var start = new ProcessStartInfo("script")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[] { "-q", "-e", "-c", command, "/dev/null" })
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(60_000), "script did not finish");
        process.StandardInput.Close();
        Assert.Equal(string.Empty, stderr.Result);
        return stdout.Result;
    }
}
