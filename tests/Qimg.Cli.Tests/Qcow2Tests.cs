using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>info, map and create on qcow2 images, against qemu-img 7.2.</summary>
public class Qcow2Tests : IClassFixture<Qcow2Images>
{
    private readonly Qcow2Images _images;

    public Qcow2Tests(Qcow2Images images)
    {
        _images = images;
    }

    [Theory]
    [MemberData(nameof(Qcow2Images.Names), MemberType = typeof(Qcow2Images))]
    public void Info_SameAsQemuImg(string name)
    {
        string path = _images[name];
        Golden.AssertSame("info", path);
        Golden.AssertSame("info", "--output=json", path);
        Golden.AssertSame("info", "-U", "-f", "qcow2", path);
    }

    [Theory]
    [MemberData(nameof(Qcow2Images.Names), MemberType = typeof(Qcow2Images))]
    public void InfoBackingChain_SameAsQemuImg(string name)
    {
        string path = _images[name];
        Golden.AssertSame("info", "--backing-chain", path);
        Golden.AssertSame("info", "--backing-chain", "--output=json", path);
    }

    [Theory]
    [MemberData(nameof(Qcow2Images.Names), MemberType = typeof(Qcow2Images))]
    public void Map_SameAsQemuImg(string name)
    {
        string path = _images[name];
        CommandResult human = Golden.AssertSame("map", path);
        Golden.AssertSame("map", "--output=json", path);
        Assert.StartsWith("Offset          Length          Mapped to       File\n", human.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("info", "--image-opts", "driver=qcow2,file.filename={dir}/top.qcow2")]
    [InlineData("info", "--image-opts", "driver=qcow2,file.filename={dir}/top.qcow2,lazy-refcounts=on,cache-size=1M")]
    [InlineData("info", "--output=json", "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"{dir}/data.qcow2\"}}")]
    [InlineData("info", "-f", "raw", "{dir}/data.qcow2")]
    [InlineData("info", "-f", "qcow2", "{dir}/backing.raw")]
    [InlineData("info", "{dir}/dangling.qcow2")]
    [InlineData("info", "--backing-chain", "{dir}/dangling.qcow2")]
    [InlineData("info", "--backing-chain", "{dir}/loop1.qcow2")]
    [InlineData("info", "--backing-chain", "--output=json", "{dir}/loop1.qcow2")]
    [InlineData("info", "--image-opts", "driver=qcow2,file.filename={dir}/top.qcow2,bogus=1")]
    [InlineData("map", "{dir}/dangling.qcow2")]
    [InlineData("map", "-f", "raw", "--output=json", "{dir}/top.qcow2")]
    [InlineData("map", "--output=json", "--start-offset=100k", "--max-length=1M", "{dir}/top.qcow2")]
    [InlineData("map", "--start-offset=1M", "{dir}/top.qcow2")]
    [InlineData("map", "--output=json", "--start-offset=1537k", "{dir}/top.qcow2")]
    [InlineData("map", "--output=json", "-s", "5000", "-l", "100000", "{dir}/subclusters.qcow2")]
    [InlineData("map", "--image-opts", "driver=qcow2,file.filename={dir}/sub/rel.qcow2")]
    [InlineData("map", "--output=json", "json:{\"file.filename\":\"{dir}/top.qcow2\"}")]
    public void Variants_SameAsQemuImg(params string[] args) => Golden.AssertSame(_images.Expand(args));

    [Theory]
    [InlineData("create", "-f", "qcow2", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "cluster_size=4k", "{dir}/x", "3M")]
    [InlineData("create", "-f", "qcow2", "-o", "compat=0.10", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "compat=v3,lazy_refcounts=on,refcount_bits=1", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", "{dir}/x", "1G")]
    [InlineData("create", "-f", "qcow2", "-o", "preallocation=metadata", "{dir}/x", "3M")]
    [InlineData("create", "-f", "qcow2", "-o", "preallocation=full", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "compression_type=zstd", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "data_file={dir}/x.data", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "data_file={dir}/x.data,data_file_raw=on", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "cluster_size=2M", "{dir}/x", "1T")]
    [InlineData("create", "-f", "qcow2", "-q", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "cluster_size=3000", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "compat=0.10,refcount_bits=8", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "compat=1.2", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "cluster_size=512", "{dir}/x", "2P")]
    [InlineData("create", "-f", "qcow2", "-o", "help")]
    [InlineData("create", "-f", "qcow2", "-o", "help", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-o", "?,cluster_size=4k", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-F", "raw", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "data_file_raw=on", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "refcount_bits=3", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "compression_type=foo", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "preallocation=foo", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "encryption=on", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "encrypt.format=luks", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=4k", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "{dir}/x", "7E")]
    public void Create_SameAsQemuImg(params string[] args) => CreateTests.AssertCreateSame(args);

    [Theory]
    [InlineData("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "top.qcow2", "-F", "qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "top.qcow2", "-F", "qcow2", "{dir}/x", "5M")]
    [InlineData("create", "-f", "qcow2", "-b", "base.qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "backing.raw", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "backing.raw", "-F", "raw", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "backing.raw", "-F", "qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "backing.raw", "-F", "nope", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "nothere.qcow2", "-F", "qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "dangling.qcow2", "-F", "qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-u", "-b", "nothere.qcow2", "-F", "qcow2", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-u", "-b", "nothere.qcow2", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-u", "-b", "base.qcow2", "-F", "qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-o", "backing_file=base.qcow2,backing_fmt=qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-o", "backing_file=base.qcow2", "-o", "backing_fmt=qcow2", "{dir}/x")]
    [InlineData("create", "-f", "qcow2", "-b", "{dir}/x", "-F", "qcow2", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-b", "", "-F", "qcow2", "{dir}/x", "1M")]
    [InlineData("create", "-f", "qcow2", "-b", "sub/../base.qcow2", "-F", "qcow2", "{dir}/x")]
    public void CreateWithBacking_SameAsQemuImg(params string[] args) => CreateTests.AssertCreateSame(args, _images.Directory);
}
