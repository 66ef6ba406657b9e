using System.Text.RegularExpressions;

namespace Qimg.Cli.Tests.Infrastructure;

/// <summary>
/// Golden runs of commands that write images (resize, dd): the same argv through qemu-img and through qimg, each on a
/// fresh copy of a fixture's files in the same directory, must give the same stdout, stderr and exit code, and leave
/// the same files: same names and lengths and, for images, the same <c>qemu-img info --output=json</c> (times and disk
/// usage aside), the same <c>qemu-img check</c> report, and the same guest content by <c>qemu-img compare</c>.
/// </summary>
public static partial class ImageCommandGolden
{
    /// <summary>
    /// Runs <paramref name="args"/> ("{dir}" stands for the working directory holding copies of
    /// <paramref name="fixture"/>'s files) through both and asserts the same results.
    /// </summary>
    public static CommandResult AssertSame(ImageSet fixture, params string[] args)
    {
        using var work = new TempDirectory();
        using var reference = new TempDirectory();
        string[] argv = args.Select(a => a.Replace("{dir}", work.Path, StringComparison.Ordinal)).ToArray();

        CopyFiles(fixture.Directory, work.Path);
        CommandResult expected = Golden.Normalize(Tools.QemuImg(argv));
        MoveFiles(work.Path, reference.Path);

        CopyFiles(fixture.Directory, work.Path);
        CommandResult actual = Tools.Qimg(argv);
        Golden.AssertEqual(expected, actual, argv);

        string[] expectedFiles = Names(reference.Path);
        string[] actualFiles = Names(work.Path);
        Assert.Equal(expectedFiles, actualFiles);
        foreach (string name in expectedFiles)
        {
            string before = Path.Combine(reference.Path, name);
            string after = Path.Combine(work.Path, name);
            Assert.True(new FileInfo(before).Length == new FileInfo(after).Length, $"{name}: file lengths differ ({new FileInfo(before).Length} from qemu-img, {new FileInfo(after).Length} from qimg)");
            CommandResult expectedInfo = Tools.QemuImg("info", "-U", "--output=json", before);
            if (expectedInfo.ExitCode != 0)
            {
                continue;
            }

            string format = Regex.Match(expectedInfo.Stdout, "\"format\": \"([^\"]+)\"").Groups[1].Value;
            Assert.Equal(FilterInfo(expectedInfo.Stdout, reference.Path), FilterInfo(Tools.QemuImg("info", "-U", "--output=json", after).Stdout, work.Path));
            Assert.Equal(
                Tools.QemuImg("check", "-U", "-f", format, before).Stdout.Replace(reference.Path, "{dir}", StringComparison.Ordinal),
                Tools.QemuImg("check", "-U", "-f", format, after).Stdout.Replace(work.Path, "{dir}", StringComparison.Ordinal));
            CommandResult compare = Tools.QemuImg("compare", "-U", "-f", format, "-F", format, before, after);
            Assert.True(compare.ExitCode == 0, $"{name}: {compare}");
        }

        return actual;
    }

    private static string FilterInfo(string json, string directory) =>
        Volatile().Replace(json.Replace(directory, "{dir}", StringComparison.Ordinal), string.Empty);

    /// <summary>What differs between two runs of the same command: snapshot times and the host's disk usage.</summary>
    [GeneratedRegex("^ *\"(date-sec|date-nsec|actual-size)\": [0-9]+,?\n", RegexOptions.Multiline)]
    private static partial Regex Volatile();

    private static string[] Names(string directory) =>
        Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    private static void CopyFiles(string from, string to)
    {
        foreach (string file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        }
    }

    private static void MoveFiles(string from, string to)
    {
        foreach (string file in Directory.GetFiles(from))
        {
            File.Move(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }
}
