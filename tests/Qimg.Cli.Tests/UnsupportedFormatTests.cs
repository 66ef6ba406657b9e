using System.Security.Cryptography;
using Qimg.Cli.Tests.Infrastructure;
using Qimg.Tests.TestSupport;

namespace Qimg.Cli.Tests;

/// <summary>
/// Images of formats qemu-img 7.2 probes but qimg cannot open yet (issue 7 §2): every command refuses them with one
/// line naming the format and leaves every file as it was; nothing is read as raw and no target is written.
/// </summary>
public sealed class UnsupportedFormatTests : IClassFixture<ProbeOnlyImages>, IDisposable
{
    private readonly ProbeOnlyImages _images;
    private readonly TempDirectory _directory = new();

    public UnsupportedFormatTests(ProbeOnlyImages images) => _images = images;

    public void Dispose() => _directory.Dispose();

    public static IEnumerable<object[]> Commands()
    {
        string[][] commands =
        [
            ["info", "{img}"],
            ["info", "--output=json", "{img}"],
            ["map", "{img}"],
            ["map", "--output=json", "{img}"],
            ["check", "{img}"],
            ["check", "-r", "all", "{img}"],
            ["convert", "-O", "qcow2", "{img}", "{out}"],
            ["convert", "-O", "raw", "{img}", "{out}"],
            ["compare", "{img}", "{img}"],
            ["bitmap", "--add", "{img}", "b0"],
        ];
        foreach ((string name, string format) in ProbeOnlyImages.All)
        {
            foreach (string[] command in commands)
            {
                yield return [name, format, command];
            }
        }
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Command_OnUnsupportedImage_RefusesWithOneLineAndTouchesNothing(string name, string format, string[] command)
    {
        string image = _directory.File(name);
        File.Copy(_images[name], image);
        foreach (string extent in Directory.GetFiles(_images.Root, Path.GetFileNameWithoutExtension(name) + "-*"))
        {
            File.Copy(extent, _directory.File(Path.GetFileName(extent)));
        }

        string output = _directory.File("out.img");
        string[] args = command.Select(a => a.Replace("{img}", image, StringComparison.Ordinal).Replace("{out}", output, StringComparison.Ordinal)).ToArray();
        byte[] before = SHA256.HashData(File.ReadAllBytes(image));

        CommandResult result = Tools.Qimg(args);

        // compare reports errors with status 2, as qemu-img's does.
        Assert.Equal(new CommandResult(command[0] == "compare" ? 2 : 1, string.Empty, $"qimg: Could not open '{image}': Image format '{format}' is not supported by qimg yet\n"), result);
        Assert.False(File.Exists(output));
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(image)));
    }

    [Theory]
    [InlineData("vmdk")]
    [InlineData("vpc")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qed")]
    [InlineData("qcow")]
    [InlineData("parallels")]
    [InlineData("luks")]
    public void ConvertAndCreate_ToUnsupportedFormat_RefuseAndWriteNothing(string format)
    {
        string source = _directory.File("source.raw");
        File.WriteAllBytes(source, new byte[65536]);
        string target = _directory.File("target." + format);
        string line = $"Image format '{format}' is not supported by qimg yet\n";

        Assert.Equal(new CommandResult(1, string.Empty, "qimg: " + line), Tools.Qimg("convert", "-O", format, source, target));
        Assert.Equal(new CommandResult(1, string.Empty, $"qimg: {target}: " + line), Tools.Qimg("create", "-f", format, target, "1M"));
        Assert.Equal(new CommandResult(1, string.Empty, "qimg: " + line), Tools.Qimg("create", "-f", format, "-o", "help"));
        Assert.Equal(new CommandResult(1, string.Empty, "qimg: " + line), Tools.Qimg("create", "-f", format, "-o", "help", target));
        Assert.Equal(new CommandResult(1, string.Empty, "qimg: " + line), Tools.Qimg("convert", "-O", format, "-o", "help"));
        Assert.False(File.Exists(target));
    }

    [Fact]
    public void ConvertNoCreate_IntoUnsupportedTarget_RefusesAndLeavesItAlone()
    {
        string source = _directory.File("source.raw");
        File.WriteAllBytes(source, new byte[1 << 20]);
        string target = _directory.File("target.vmdk");
        File.Copy(_images["monolithicSparse.vmdk"], target);
        byte[] before = File.ReadAllBytes(target);

        CommandResult result = Tools.Qimg("convert", "-n", "-O", "vmdk", source, target);

        Assert.Equal(new CommandResult(1, string.Empty, $"qimg: Could not open '{target}': Image format 'vmdk' is not supported by qimg yet\n"), result);
        Assert.Equal(before, File.ReadAllBytes(target));
    }

    /// <summary>Where qemu-img's answer needs no driver qimg lacks, the output is qemu-img's.</summary>
    [Theory]
    [InlineData("create", "-f", "bochs", "{dir}/x.bochs", "1M")]
    [InlineData("create", "-f", "cloop", "-o", "help")]
    [InlineData("convert", "-O", "dmg", "{src}", "{dir}/x.dmg")]
    [InlineData("create", "-f", "nosuchfmt", "{dir}/x", "1M")]
    [InlineData("create", "-f", "nosuchfmt", "-o", "help")]
    [InlineData("convert", "-O", "nosuchfmt", "{src}", "{dir}/x")]
    [InlineData("info", "-f", "nosuchfmt", "{src}")]
    [InlineData("info", "{dir}/fixed.vhd")]
    public void FormatErrorsAndRawLookalikes_SameAsQemuImg(params string[] args)
    {
        string source = _directory.File("source.raw");
        File.WriteAllBytes(source, new byte[65536]);
        File.Copy(_images["fixed.vhd"], _directory.File("fixed.vhd"));
        string[] expanded = args.Select(a => a.Replace("{dir}", _directory.Path, StringComparison.Ordinal).Replace("{src}", source, StringComparison.Ordinal)).ToArray();

        Golden.AssertSame(expanded);
        Assert.False(File.Exists(_directory.File("x")) || File.Exists(_directory.File("x.bochs")) || File.Exists(_directory.File("x.dmg")));
    }

    [Fact]
    public void Help_SupportedFormats_LeaveOutFormatsQimgOnlyRecognises()
    {
        string line = Tools.Qimg("--help").Stdout.Split('\n').Single(l => l.StartsWith("Supported formats: ", StringComparison.Ordinal));

        string[] names = line["Supported formats: ".Length..].Split(' ');
        foreach ((string _, string format) in ProbeOnlyImages.All)
        {
            Assert.DoesNotContain(format, names);
        }

        Assert.Contains("qcow2", names);
        Assert.Contains("raw", names);
    }
}
