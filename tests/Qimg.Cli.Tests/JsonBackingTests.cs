using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// Backing names of the form <c>json:{…}</c> are followed as qemu-img 7.2 follows them (issue 7, section 6); data-file
/// names stay plain file names; names with an unknown protocol prefix and empty names fail with qemu-img's lines.
/// </summary>
public sealed class JsonBackingTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public JsonBackingTests()
    {
        Tools.QemuImgOk("create", "-q", "-f", "raw", _dir.File("base.raw"), "4M");
        Tools.QemuIo("-f", "raw", "-c", "write -P 0x5a 0 64k", _dir.File("base.raw"));
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", _dir.File("base.qcow2"), "4M");
        Tools.QemuIo("-c", "write -P 0x77 64k 64k", _dir.File("base.qcow2"));
    }

    [Theory]
    [InlineData("json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"{dir}/base.raw\"}}", "raw")]
    [InlineData("json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"{dir}/base.raw\"}}", "raw")]
    [InlineData("json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"{dir}/base.qcow2\"}}", "qcow2")]
    [InlineData("json:{\"file\":{\"filename\":\"{dir}/base.qcow2\"}}", "qcow2")]
    [InlineData("json:{'driver':'qcow2','file':{'driver':'file','filename':'{dir}/base.qcow2'}}", "qcow2")]
    [InlineData("json:{\"driver\":\"qcow2\",\"file\":\"{dir}/base.qcow2\"}", "qcow2")]
    [InlineData("json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"\"}}", "raw")]
    [InlineData("json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\"}}", "raw")]
    [InlineData("a:b.qcow2", "qcow2")]
    public void JsonBacking_InfoMapCheckConvert_SameAsQemuImg(string backing, string format)
    {
        backing = backing.Replace("{dir}", _dir.Path, StringComparison.Ordinal);
        string top = _dir.File("top.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", format, top, "4M");
        Golden.AssertSame("info", "--backing-chain", top);
        Golden.AssertSame("info", "--backing-chain", "--output=json", top);
        Golden.AssertSame("map", top);
        Golden.AssertSame("map", "--output=json", top);
        Golden.AssertSame("check", top);
        CommandResult expected = Golden.Normalize(Tools.QemuImg("convert", "-O", "raw", top, _dir.File("qemu.raw")));
        CommandResult actual = Tools.Qimg("convert", "-O", "raw", top, _dir.File("qimg.raw"));
        Golden.AssertEqual(expected, actual, ["convert", top]);
        if (expected.ExitCode == 0)
        {
            Assert.Equal(File.ReadAllBytes(_dir.File("qemu.raw")), File.ReadAllBytes(_dir.File("qimg.raw")));
        }
    }

    [Fact]
    public void CreateWithJsonBacking_SameAsQemuImg()
    {
        string backing = $"json:{{\"driver\":\"raw\",\"file\":{{\"driver\":\"file\",\"filename\":\"{_dir.File("base.raw")}\"}}}}";
        Golden.AssertSame("create", "-f", "qcow2", "-b", backing, "-F", "raw", _dir.File("new.qcow2"));
        Golden.AssertSame("info", "--backing-chain", _dir.File("new.qcow2"));
    }

    [Theory]
    [InlineData("info", "a:b.qcow2")]
    [InlineData("info", "")]
    [InlineData("info", "file:")]
    [InlineData("info", "host_device:")]
    [InlineData("info", "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\"}}")]
    [InlineData("info", "json:{\"file\":{\"driver\":\"file\",\"filename\":\"\"}}")]
    [InlineData("convert", "-O", "raw", "", "{dir}/o.raw")]
    [InlineData("convert", "-O", "raw", "a:b.qcow2", "{dir}/o.raw")]
    [InlineData("create", "-f", "qcow2", "-b", "a:b.qcow2", "-F", "qcow2", "{dir}/c.qcow2", "1M")]
    [InlineData("create", "-f", "qcow2", "-b", "", "-F", "raw", "{dir}/c.qcow2", "1M")]
    [InlineData("create", "-f", "qcow2", "-b", "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"\"}}", "-F", "raw", "{dir}/c.qcow2", "1M")]
    public void BadNames_SameAsQemuImg(params string[] args) =>
        Golden.AssertSame([.. args.Select(a => a.Replace("{dir}", _dir.Path, StringComparison.Ordinal))]);

    /// <summary>A data-file name is a plain file name: "json:{…}" and "a:…" are looked up as files (CVE-2024-4467).</summary>
    [Theory]
    [InlineData("json:{\"driver\":\"file\",\"filename\":\"d.raw\"}")]
    [InlineData("a:d.raw")]
    public void DataFileName_IsPlainFileName_SameAsQemuImg(string dataFile)
    {
        string top = _dir.File("df.qcow2");
        string placeholder = _dir.File(new string('d', 60));

        // The name replaces the placeholder in the header extension, so it is padded to the same length.
        int padding = placeholder.Length - dataFile.Length;
        dataFile = dataFile.StartsWith("json:", StringComparison.Ordinal)
            ? dataFile[..^1] + new string(' ', padding) + "}"
            : dataFile[..2] + new string('x', padding) + dataFile[2..];
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", "-o", "data_file=" + placeholder, top, "1M");
        byte[] bytes = File.ReadAllBytes(top);
        int at = bytes.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(placeholder));
        System.Text.Encoding.ASCII.GetBytes(dataFile).CopyTo(bytes, at);
        File.WriteAllBytes(top, bytes);
        File.Copy(_dir.File("base.raw"), _dir.File("d.raw"));
        Golden.AssertSame("info", top);
        Golden.AssertSame("convert", "-O", "raw", top, _dir.File("o.raw"));
        Golden.AssertSame("check", top);
    }

    public void Dispose() => _dir.Dispose();
}
