using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>Global options, command dispatch, help and option errors, compared with qemu-img 7.2.</summary>
public class CommandLineTests
{
    /// <summary>
    /// The help text without the parts that are qimg's own: the two version lines at the top, the list of supported
    /// formats, and the two lines at the bottom.
    /// </summary>
    private static string HelpBody(string help)
    {
        List<string> lines = help.Split('\n').ToList();
        Assert.True(lines.Count > 10, help);
        lines = lines[2..^3];
        return string.Join('\n', lines.Select(l => l.StartsWith("Supported formats:", StringComparison.Ordinal) ? "Supported formats: …" : l));
    }

    [Theory]
    [InlineData("-h")]
    [InlineData("--help")]
    [InlineData("--he")]
    [InlineData("-hx")]
    [InlineData("info", "-h")]
    [InlineData("create", "--help")]
    [InlineData("convert", "-h", "-z")]
    [InlineData("measure", "-z")]
    [InlineData("measure", "--o")]
    [InlineData("map", "--h")]
    [InlineData("measure", "--size")]
    [InlineData("measure", "-f")]
    public void Help_SameTextAsQemuImg(params string[] args)
    {
        CommandResult expected = Golden.Normalize(Tools.QemuImg(args));
        CommandResult actual = Tools.Qimg(args);
        Assert.Equal(expected.ExitCode, actual.ExitCode);
        Assert.Equal(expected.Stderr, actual.Stderr);
        Assert.Equal(HelpBody(expected.Stdout), HelpBody(actual.Stdout));
        Assert.StartsWith("qimg version ", actual.Stdout, StringComparison.Ordinal);
        string formats = actual.Stdout.Split('\n').Single(l => l.StartsWith("Supported formats: ", StringComparison.Ordinal))["Supported formats: ".Length..];
        string[] names = formats.Split(' ');
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        Assert.Contains("file", names);
        Assert.Contains("qcow2", names);
        Assert.Contains("raw", names);
    }

    [Theory]
    [InlineData("-V")]
    [InlineData("--version")]
    [InlineData("--v")]
    [InlineData("-Vh")]
    public void Version_SaysQimgAndCompatibleQemuImg(params string[] args)
    {
        CommandResult qemu = Tools.QemuImg(args);
        CommandResult actual = Tools.Qimg(args);
        Assert.Equal(qemu.ExitCode, actual.ExitCode);
        Assert.Equal(string.Empty, actual.Stderr);
        Assert.StartsWith("qimg version 0.1.0 (compatible with qemu-img version 7.2)\n", actual.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, actual.Stdout.Count(c => c == '\n'));
    }

    [Theory]
    [InlineData]
    [InlineData("--")]
    [InlineData("nope")]
    [InlineData("-q", "info")]
    [InlineData("--foo")]
    [InlineData("--help=1")]
    [InlineData("-T")]
    [InlineData("--trace")]
    [InlineData("-T", "foo")]
    [InlineData("-T", "foo", "nope")]
    [InlineData("-T", "a,,b*")]
    [InlineData("-T", "enable=a,bogus=1")]
    [InlineData("-T", "enable=x,events=/nonexistent/events")]
    [InlineData("INFO")]
    [InlineData("create", "-zq", "x")]
    [InlineData("create", "-qz", "x")]
    [InlineData("create", "-f")]
    [InlineData("create", "--foo=bar")]
    [InlineData("create", "--obj")]
    [InlineData("info", "--f", "raw")]
    [InlineData("info", "--output")]
    [InlineData("info", "--backing-chain=1", "x")]
    [InlineData("map", "--start")]
    [InlineData("map", "-l")]
    [InlineData("amend", "-x")]
    [InlineData("bench", "--pattern")]
    [InlineData("bitmap", "--merge")]
    [InlineData("check", "-r")]
    [InlineData("compare", "-T")]
    [InlineData("convert", "-O")]
    [InlineData("convert", "--target")]
    [InlineData("convert", "-Wz")]
    [InlineData("dd", "-O")]
    [InlineData("snapshot", "-a")]
    [InlineData("resize", "--pre")]
    [InlineData("resize", "--pre", "x")]
    [InlineData("resize", "-q", "--pre", "x")]
    [InlineData("resize", "--shrink=1")]
    public void Errors_SameAsQemuImg(params string[] args)
    {
        Golden.AssertSame(args);
        // Installed as qemu-img, qimg says "qemu-img: …" and "Try 'qemu-img --help'", byte for byte.
        Golden.AssertSameUnderQemuImgName(args);
    }

    [Theory]
    [InlineData("amend", "-o", "x=y", "-q", "f")]
    [InlineData("bench", "-c", "1", "f")]
    [InlineData("commit", "f")]
    [InlineData("snapshot", "-l", "f")]
    [InlineData("rebase", "-u", "-b", "", "f")]
    public void PendingCommands_ScanOptionsThenSayNotImplemented(params string[] args)
    {
        CommandResult result = Tools.Qimg(args);
        Assert.Equal(new CommandResult(1, string.Empty, $"qimg: {args[0]}: not implemented yet\n"), result);
    }
}
