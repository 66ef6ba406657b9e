using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary><c>info</c> against qemu-img 7.2 on images made by qemu-img and qemu-io.</summary>
public class InfoTests : IClassFixture<RawImages>
{
    private readonly RawImages _raw;

    public InfoTests(RawImages raw)
    {
        _raw = raw;
    }

    [Theory]
    [MemberData(nameof(RawImages.Names), MemberType = typeof(RawImages))]
    public void Info_Raw_SameAsQemuImg(string name)
    {
        string path = _raw[name];
        Golden.AssertSame("info", path);
        Golden.AssertSame("info", "--output=json", path);
        Golden.AssertSame("info", "--output", "human", "--backing-chain", path);
        Golden.AssertSame("info", "--backing-chain", "--output=json", path);
        Golden.AssertSame("info", "-f", "raw", "-U", path);
    }

    [Theory]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw")]
    [InlineData("info", "--image-opts", "file.filename={dir}/data.raw")]
    [InlineData("info", "--image-opts", "driver=raw,file.driver=file,file.filename={dir}/data.raw,file.locking=off")]
    [InlineData("info", "--output=json", "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"{dir}/data.raw\"}}")]
    [InlineData("info", "json:{\"file\":{\"filename\":\"{dir}/data.raw\"}}")]
    [InlineData("info", "json:{\"file.filename\":\"{dir}/data.raw\"}")]
    [InlineData("info", "--object", "secret,id=s0,data=x", "{dir}/data.raw")]
    [InlineData("info", "{dir}/data.raw", "--output=json")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw,read-only")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw,noread-only")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw,help")]
    [InlineData("info", "--image-opts", "help")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw,id=foo")]
    public void Info_Variants_SameAsQemuImg(params string[] args) => Golden.AssertSame(_raw.Expand(args));

    [Theory]
    [InlineData("info", "{dir}/nonexistent")]
    [InlineData("info", "--output=xml", "{dir}/data.raw")]
    [InlineData("info", "-f", "nosuch", "{dir}/data.raw")]
    [InlineData("info", "--image-opts", "-f", "raw", "{dir}/data.raw")]
    [InlineData("info", "--image-opts", "{dir}/data.raw")]
    [InlineData("info", "--image-opts", "driver=raw")]
    [InlineData("info", "--image-opts", "filename={dir}/data.raw")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw,foo=bar")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/data.raw,file.foo=1")]
    [InlineData("info", "--image-opts", "driver=raw,file.driver=nope,file.filename={dir}/data.raw")]
    [InlineData("info", "--image-opts", "driver=raw,file.filename={dir}/nonexistent")]
    [InlineData("info", "json:{bad")]
    [InlineData("info", "json:[]")]
    [InlineData("info", "json:")]
    [InlineData("info", "json:{\"driver\":\"raw\",\"file\":\"x\"}")]
    [InlineData("info")]
    [InlineData("info", "a", "b")]
    [InlineData("info", "--object", "secret,id=s0", "{dir}/data.raw")]
    public void Info_Errors_SameAsQemuImg(params string[] args) => Golden.AssertSame(_raw.Expand(args));
}
