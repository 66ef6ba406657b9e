using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary><c>map</c> against qemu-img 7.2 on images made by qemu-img and qemu-io.</summary>
public class MapTests : IClassFixture<RawImages>
{
    private readonly RawImages _raw;

    public MapTests(RawImages raw)
    {
        _raw = raw;
    }

    [Theory]
    [MemberData(nameof(RawImages.Names), MemberType = typeof(RawImages))]
    public void Map_Raw_SameAsQemuImg(string name)
    {
        string path = _raw[name];
        Golden.AssertSame("map", path);
        Golden.AssertSame("map", "--output=json", path);
        Golden.AssertSame("map", "-f", "raw", "--output", "human", path);
    }

    [Theory]
    [InlineData("map", "--start-offset=2M", "{dir}/data.raw")]
    [InlineData("map", "--output=json", "--start-offset=2M", "{dir}/data.raw")]
    [InlineData("map", "--output=json", "--start-offset=100k", "{dir}/data.raw")]
    [InlineData("map", "--start-offset=65537", "--max-length=1000", "{dir}/data.raw")]
    [InlineData("map", "--output=json", "-s", "65537", "-l", "1000", "{dir}/data.raw")]
    [InlineData("map", "--output=json", "--max-length=0", "{dir}/data.raw")]
    [InlineData("map", "--output=json", "-l", "9223372036854775807", "-s", "9223372036854775807", "{dir}/data.raw")]
    [InlineData("map", "--output=json", "--max-length=1G", "{dir}/sparse.raw")]
    [InlineData("map", "--image-opts", "driver=raw,file.filename={dir}/data.raw")]
    [InlineData("map", "--output=json", "json:{\"file.filename\":\"{dir}/data.raw\"}")]
    [InlineData("map", "-U", "{dir}/data.raw")]
    public void Map_Variants_SameAsQemuImg(params string[] args) => Golden.AssertSame(_raw.Expand(args));

    [Theory]
    [InlineData("map", "{dir}/nonexistent")]
    [InlineData("map", "--output=foo", "{dir}/data.raw")]
    [InlineData("map", "-s", "-1", "{dir}/data.raw")]
    [InlineData("map", "-s", "1x", "{dir}/data.raw")]
    [InlineData("map", "-l", "8E", "{dir}/data.raw")]
    [InlineData("map", "--image-opts", "-f", "raw", "{dir}/data.raw")]
    [InlineData("map", "-f", "nosuch", "{dir}/data.raw")]
    [InlineData("map")]
    [InlineData("map", "a", "b")]
    public void Map_Errors_SameAsQemuImg(params string[] args) => Golden.AssertSame(_raw.Expand(args));

    /// <summary>
    /// iotest 253: with <c>cache.direct=on</c> the file is opened with O_DIRECT, so its request alignment is the
    /// O_DIRECT block size and a data extent ending at an unaligned end of file is rounded up to it (qimg ignored the
    /// option and split off a one-byte zero extent).
    /// </summary>
    [Theory]
    [InlineData("cache.direct=on")]
    [InlineData("file.cache.direct=on")]
    [InlineData("cache.direct=off")]
    public void Map_CacheDirectOnUnalignedFile_SameAsQemuImg(string direct)
    {
        using var dir = new TempDirectory();
        string path = dir.File("u.raw");
        const int Size = (1 << 20) - 1;
        Tools.QemuImgOk("create", "-q", "-f", "raw", path, Size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Tools.QemuIo("-f", "raw", "-c", $"write {(1 << 20) - 65536} {Size - (1 << 20) + 65536}", path);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            file.SetLength(Size);
        }

        Golden.AssertSame("map", "--output=json", "--image-opts", $"driver=raw,file.driver=file,file.filename={path},{direct}");
    }
}
