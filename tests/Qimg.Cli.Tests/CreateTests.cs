using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// <c>create</c> against qemu-img 7.2: the same command line (with "{dir}" standing for a fresh temporary directory)
/// through both tools, comparing stdout, stderr, exit code and the files created.
/// </summary>
public class CreateTests
{
    /// <summary>
    /// Runs the command through qemu-img, sets aside what it created, runs it through qimg, and compares the output and
    /// every new file in the directory (size and content). "{dir}" in the arguments stands for
    /// <paramref name="directory"/>, or for a fresh temporary directory.
    /// </summary>
    internal static void AssertCreateSame(string[] args, string? directory = null)
    {
        using var temp = new TempDirectory();
        string dir = directory ?? temp.Path;
        string[] argv = args.Select(a => a.Replace("{dir}", dir, StringComparison.Ordinal)).ToArray();
        string[] before = Directory.GetFiles(dir);
        CommandResult expected = Golden.Normalize(Tools.QemuImg(argv));
        Dictionary<string, byte[]> qemuFiles = TakeNewFiles(dir, before);
        CommandResult actual = Tools.Qimg(argv);
        Dictionary<string, byte[]> qimgFiles = TakeNewFiles(dir, before);
        Golden.AssertEqual(expected, actual, argv);
        Assert.Equal(qemuFiles.Keys.Order(), qimgFiles.Keys.Order());
        foreach ((string name, byte[] content) in qemuFiles)
        {
            Assert.True(content.AsSpan().SequenceEqual(qimgFiles[name]), $"{name} differs ({content.Length} vs {qimgFiles[name].Length} bytes)");
        }
    }

    private static Dictionary<string, byte[]> TakeNewFiles(string dir, string[] before)
    {
        var files = new Dictionary<string, byte[]>();
        foreach (string path in Directory.GetFiles(dir).Except(before))
        {
            files[Path.GetFileName(path)] = File.ReadAllBytes(path);
            File.Delete(path);
        }

        return files;
    }

    [Theory]
    [InlineData("create", "{dir}/x", "1M")]
    [InlineData("create", "-f", "raw", "{dir}/x", "0")]
    [InlineData("create", "-f", "raw", "{dir}/x", "1")]
    [InlineData("create", "-f", "raw", "{dir}/x", "1000")]
    [InlineData("create", "{dir}/x", "1.5k")]
    [InlineData("create", "{dir}/x", "0x1k")]
    [InlineData("create", "{dir}/x", " +1M")]
    [InlineData("create", "-q", "{dir}/x", "1M")]
    [InlineData("create", "-o", "size=1M", "{dir}/x")]
    [InlineData("create", "-o", "size=64k", "-o", "nocow=on", "{dir}/x")]
    [InlineData("create", "-o", "nocow=on,extent_size_hint=1M", "{dir}/x", "1M")]
    [InlineData("create", "-o", "preallocation=off", "{dir}/x", "1M")]
    [InlineData("create", "-o", "preallocation=full", "{dir}/x", "256k")]
    [InlineData("create", "-o", "preallocation=falloc", "{dir}/x", "256k")]
    [InlineData("create", "{dir}/x", "1M", "-q")]
    [InlineData("create", "--object", "secret,id=s,data=x", "{dir}/x", "1M")]
    [InlineData("create", "-u", "{dir}/x", "1M")]
    public void Create_Raw_SameAsQemuImg(params string[] args) => AssertCreateSame(args);

    [Theory]
    [InlineData("create")]
    [InlineData("create", "-q")]
    [InlineData("create", "{dir}/x")]
    [InlineData("create", "{dir}/x", "1M", "extra")]
    [InlineData("create", "{dir}/x", "1Q")]
    [InlineData("create", "{dir}/x", "1.5")]
    [InlineData("create", "{dir}/x", "1e3")]
    [InlineData("create", "{dir}/x", "8E")]
    [InlineData("create", "{dir}/x", "99999999999999999999")]
    [InlineData("create", "{dir}/x", "--", "-1")]
    [InlineData("create", "{dir}/x", "-1")]
    [InlineData("create", "-f", "nope", "{dir}/x", "1M")]
    [InlineData("create", "-f", "nope", "-o", "help")]
    [InlineData("create", "-o", "foo=bar", "{dir}/x", "1M")]
    [InlineData("create", "-o", "size=abc", "{dir}/x")]
    [InlineData("create", "-o", "size=1M", "{dir}/x", "1M")]
    [InlineData("create", "-o", "nocow=maybe", "{dir}/x", "1M")]
    [InlineData("create", "-o", "nocow", "{dir}/x", "1M")]
    [InlineData("create", "-o", ",", "{dir}/x", "1M")]
    [InlineData("create", "-o", "a=b,", "{dir}/x", "1M")]
    [InlineData("create", "-o", "", "{dir}/x", "1M")]
    [InlineData("create", "-o", "help=1", "{dir}/x", "1M")]
    [InlineData("create", "-b", "{dir}/y", "-F", "raw", "{dir}/x", "1M")]
    [InlineData("create", "-F", "raw", "{dir}/x", "1M")]
    [InlineData("create", "foo:bar", "1M")]
    [InlineData("create", "-o", "preallocation=full,,x", "{dir}/x", "1M")]
    [InlineData("create", "-o", "preallocation=metadata", "{dir}/x", "1M")]
    [InlineData("create", "{dir}/nonexistent/x", "1M")]
    [InlineData("create", "-o", "size=9E", "{dir}/x")]
    [InlineData("create", "{dir}/x", "9223372036854775296")]
    [InlineData("create", "json:{}", "1M")]
    [InlineData("create", "--object", "foo", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret,id=s", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret,id=s,data=x,bogus=1", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret,id=s,data=x", "--object", "secret,id=s,data=y", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret,id=s,file={dir}/nonexistent", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret,id=s,data=!!,format=base64", "{dir}/x", "1M")]
    [InlineData("create", "--object", "secret,help")]
    public void Create_Errors_SameAsQemuImg(params string[] args) => AssertCreateSame(args);

    [Theory]
    [InlineData("create", "-o", "help")]
    [InlineData("create", "-o", "?")]
    [InlineData("create", "-f", "raw", "-o", "help", "{dir}/x")]
    [InlineData("create", "-o", "size=1M,help", "{dir}/x", "1M")]
    [InlineData("create", "-o", "help", "-o", "size=1M", "{dir}/x", "1M")]
    public void Create_OptionHelp_SameAsQemuImg(params string[] args) => AssertCreateSame(args);
}
