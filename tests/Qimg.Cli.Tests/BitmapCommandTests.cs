using System.Text.RegularExpressions;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>Images for the bitmap command tests: a qcow2 image with bitmaps holding bits, a merge source, v2 and raw images.</summary>
public sealed class BitmapCommandImages : ImageSet
{
    public BitmapCommandImages()
    {
        Create("-f", "qcow2", "{dir}/image.qcow2", "10M");
        QemuImg("bitmap", "--add", "{dir}/image.qcow2", "a");
        QemuImg("bitmap", "--add", "-g", "4k", "--disable", "{dir}/image.qcow2", "off");
        Io("image.qcow2", "qcow2", "write -P 1 0 1M", "write -P 2 7M 5k");
        System.IO.File.Copy(this["image.qcow2"], this["broken.qcow2"]);
        Tools.Run("qemu-io", ["-c", "write 0 64k", "-c", "sigraise 9", this["broken.qcow2"]]);

        Create("-f", "qcow2", "{dir}/other.qcow2", "10M");
        QemuImg("bitmap", "--add", "-g", "1M", "{dir}/other.qcow2", "src");
        Io("other.qcow2", "qcow2", "write -P 3 3M 1k");
        Create("-f", "qcow2", "{dir}/bigger.qcow2", "20M");
        QemuImg("bitmap", "--add", "{dir}/bigger.qcow2", "src");

        Create("-f", "qcow2", "-o", "compat=0.10", "{dir}/v2.qcow2", "10M");
        Create("-f", "raw", "{dir}/plain.raw", "10M");
    }
}

/// <summary>
/// qimg bitmap against qemu-img 7.2: the same argv on copies of the same image gives the same output and exit code
/// (QEMU's generated node names aside) and a byte-identical image.
/// </summary>
public sealed partial class BitmapCommandTests : IClassFixture<BitmapCommandImages>, IDisposable
{
    private readonly BitmapCommandImages _images;
    private readonly TempDirectory _dir = new();

    public BitmapCommandTests(BitmapCommandImages images)
    {
        _images = images;
    }

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Commands => new()
    {
        // Actions, alone and in sequence.
        "--add {img} b",
        "--add -g 512 {img} b",
        "--add -g 2M --disable {img} b",
        "--add --disable --enable {img} b",
        "--remove {img} a",
        "--remove {img} off",
        "--clear {img} a",
        "--enable {img} off",
        "--disable {img} a",
        "--merge a {img} off",
        "--add --merge a --merge off {img} b",
        "--add -g 64k --merge src -b {src} {img} b",
        "--add -g 64k --merge src -b {src} -F qcow2 {img} b",
        "--add --remove --add {img} b",
        "--add -g 0 {img} b",
        "--add -g 4294967808 {img} b",
        // Failures: the actions before the failing one are kept.
        "--add {img} a",
        "--add --add {img} b",
        "--remove {img} nope",
        "--clear --remove {img} nope",
        "--merge nope {img} a",
        "--merge src -b {bigger} {img} a",
        "--merge src -b {raw} {img} a",
        "--merge src -b {missing} {img} a",
        "--add -g 1000 {img} b",
        "--add -g 4G {img} b",
        "--add -g 1T {img} b",
        "--add {img} " + new string('n', 1024),
        "--add {img} ",
        "--clear {broken} a",
        "--enable {broken} a",
        "--merge a {broken} off",
        "--merge off {broken} b",
        "--remove {broken} a",
        "--add {v2} b",
        "--add -f raw {raw} b",
        "--remove {raw} b",
        // Usage errors.
        "{img} a",
        "-g 64k --remove {img} a",
        "-F qcow2 --remove {img} a",
        "-b {src} --remove {img} a",
        "--add {img}",
        "--add {img} a b",
        "--add -g x {img} b",
        "--add -g -1 {img} b",
        "--add -f qcow2 --image-opts {img} b",
        "--add --image-opts driver=qcow2,file.filename={img} b",
        "--add --object secret,id=s0,data=x {img} b",
        "--frobnicate {img} a",
        "--add -g",
        "--merge",
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void Bitmap_SameAsQemuImg(string command)
    {
        string image = _dir.File("image.qcow2");
        string[] args = ["bitmap", .. command.Split(' ').Select(a => Expand(a, image))];
        if (command.EndsWith("{img} ", StringComparison.Ordinal))
        {
            args[^1] = "";
        }

        string target = command.Contains("{broken}", StringComparison.Ordinal) ? _images["broken.qcow2"]
            : command.Contains("{v2}", StringComparison.Ordinal) ? _images["v2.qcow2"] : _images["image.qcow2"];
        string[] qemuArgs = args.Select(a => a.Replace(_images["broken.qcow2"], image, StringComparison.Ordinal).Replace(_images["v2.qcow2"], image, StringComparison.Ordinal)).ToArray();

        File.Copy(target, image, overwrite: true);
        CommandResult expected = Filter(Golden.Normalize(Tools.QemuImg(qemuArgs)));
        byte[] expectedBytes = File.ReadAllBytes(image);
        File.Copy(target, image, overwrite: true);
        CommandResult actual = Filter(Tools.Qimg(qemuArgs));
        Golden.AssertEqual(expected, actual, qemuArgs);
        byte[] actualBytes = File.ReadAllBytes(image);
        int index = expectedBytes.AsSpan().CommonPrefixLength(actualBytes);
        Assert.True(index == expectedBytes.Length && expectedBytes.Length == actualBytes.Length, $"Images differ at byte {index} (sizes {expectedBytes.Length} and {actualBytes.Length})");
        if (expected.ExitCode == 0)
        {
            CommandResult check = Tools.QemuImg("check", image);
            Assert.True(check.ExitCode == 0, check.ToString());
        }
    }

    private string Expand(string arg, string image) => arg
        .Replace("{img}", image, StringComparison.Ordinal)
        .Replace("{src}", _images["other.qcow2"], StringComparison.Ordinal)
        .Replace("{bigger}", _images["bigger.qcow2"], StringComparison.Ordinal)
        .Replace("{raw}", _images["plain.raw"], StringComparison.Ordinal)
        .Replace("{missing}", _dir.File("missing.qcow2"), StringComparison.Ordinal)
        .Replace("{broken}", _images["broken.qcow2"], StringComparison.Ordinal)
        .Replace("{v2}", _images["v2.qcow2"], StringComparison.Ordinal);

    /// <summary>QEMU's generated node names ("#block123") differ from run to run.</summary>
    private static CommandResult Filter(CommandResult result) => result with
    {
        Stderr = NodeName().Replace(result.Stderr, "#blockN"),
        Stdout = result.Stdout.Contains("Supported formats", StringComparison.Ordinal) ? "(help)" : result.Stdout,
    };

    [GeneratedRegex("#block[0-9]+")]
    private static partial Regex NodeName();
}
