using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>Raw images with data, holes, odd sizes, made by qemu-img and qemu-io.</summary>
public sealed class RawImages : ImageSet
{
    public RawImages()
    {
        Create("-f", "raw", "{dir}/data.raw", "1M");
        Io("data.raw", "raw", "write -P 1 64k 64k", "write -P 2 300k 3k", "write -z 512k 64k");
        Create("-f", "raw", "{dir}/empty.raw", "0");
        Create("-f", "raw", "{dir}/sparse.raw", "3G");
        Io("sparse.raw", "raw", "write -P 3 1G 1M", "write -P 4 2047M 1M");
        File.WriteAllBytes(this["odd.raw"], new byte[1000]);
        Io("odd.raw", "raw", "write -P 5 0 100");
        File.WriteAllBytes(this["full.raw"], Enumerable.Repeat((byte)7, 200 << 10).ToArray());
    }

    public static IEnumerable<object[]> Names() => [["data.raw"], ["empty.raw"], ["sparse.raw"], ["odd.raw"], ["full.raw"]];
}
