using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>Pairs of images for compare: equal content in different formats and layouts, and every kind of difference.</summary>
public sealed class CompareImages : ImageSet
{
    public CompareImages()
    {
        Create("-f", "raw", "{dir}/a.raw", "16M");
        Io("a.raw", "raw", "write -P 0x11 0 1M", "write -P 0x22 4M 64k", "write -P 0x00 8M 1M", "write -P 0x33 15M 512");
        QemuImg("convert", "-O", "qcow2", "{dir}/a.raw", "{dir}/a.qcow2");
        QemuImg("convert", "-O", "qcow2", "-c", "{dir}/a.raw", "{dir}/a-compressed.qcow2");
        QemuImg("convert", "-O", "qcow2", "-S", "0", "{dir}/a.raw", "{dir}/a-allocated.qcow2");
        QemuImg("convert", "-O", "raw", "-S", "0", "{dir}/a.raw", "{dir}/a-allocated.raw");

        // The same content through a backing chain.
        Create("-f", "qcow2", "{dir}/base.qcow2", "16M");
        Io("base.qcow2", "qcow2", "write -P 0x11 0 1M", "write -P 0x77 4M 64k");
        Create("-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "{dir}/top.qcow2");
        Io("top.qcow2", "qcow2", "write -P 0x22 4M 64k", "write -P 0x33 15M 512");

        // Differences: one byte in data, data where the other has a hole, a zero range written as zero clusters.
        QemuImg("convert", "-O", "qcow2", "{dir}/a.raw", "{dir}/byte.qcow2");
        Io("byte.qcow2", "qcow2", "write -P 0x12 700000 1");
        QemuImg("convert", "-O", "raw", "{dir}/a.raw", "{dir}/extra.raw");
        Io("extra.raw", "raw", "write -P 0x44 12M 4k");
        QemuImg("convert", "-O", "qcow2", "{dir}/a.raw", "{dir}/zeroed.qcow2");
        Io("zeroed.qcow2", "qcow2", "write -z 0 64k");

        // Different sizes: a longer copy whose tail is empty, one whose tail holds zeroes, one with data there.
        Create("-f", "qcow2", "{dir}/long-empty.qcow2", "20M");
        Io("long-empty.qcow2", "qcow2", "write -P 0x11 0 1M", "write -P 0x22 4M 64k", "write -P 0x33 15M 512");
        Create("-f", "raw", "{dir}/long-zeroes.raw", "20M");
        Io("long-zeroes.raw", "raw", "write -P 0x11 0 1M", "write -P 0x22 4M 64k", "write -P 0x33 15M 512", "write -P 0 17M 1M");
        Create("-f", "raw", "{dir}/long-data.raw", "20M");
        Io("long-data.raw", "raw", "write -P 0x11 0 1M", "write -P 0x22 4M 64k", "write -P 0x33 15M 512", "write -P 0x55 19M 4k");
    }

    public static IEnumerable<object[]> Pairs()
    {
        string[] names =
        [
            "a.raw", "a.qcow2", "a-compressed.qcow2", "a-allocated.qcow2", "a-allocated.raw", "top.qcow2", "byte.qcow2",
            "extra.raw", "zeroed.qcow2", "long-empty.qcow2", "long-zeroes.raw", "long-data.raw",
        ];
        foreach (string first in names)
        {
            foreach (string second in names)
            {
                if (first != second)
                {
                    yield return [first, second];
                }
            }
        }
    }
}

/// <summary>compare against qemu-img 7.2: same messages, same exit codes (0 same, 1 different, 2 open error…).</summary>
public class CompareTests : IClassFixture<CompareImages>
{
    private readonly CompareImages _images;

    public CompareTests(CompareImages images)
    {
        _images = images;
    }

    [Theory]
    [MemberData(nameof(CompareImages.Pairs), MemberType = typeof(CompareImages))]
    public void EveryPair(string first, string second)
    {
        Golden.AssertSame("compare", _images[first], _images[second]);
        Golden.AssertSame("compare", "-s", _images[first], _images[second]);
    }

    [Theory]
    [InlineData("-q", "a.raw", "byte.qcow2")]
    [InlineData("-q", "a.raw", "a.qcow2")]
    [InlineData("-f", "raw", "-F", "qcow2", "a.raw", "a.qcow2")]
    [InlineData("-f", "qcow2", "a.raw", "a.qcow2")]
    [InlineData("-F", "raw", "a.raw", "a.qcow2")]
    [InlineData("-U", "a.raw", "a.qcow2")]
    [InlineData("-T", "none", "a.raw", "a.qcow2")]
    [InlineData("-T", "bogus", "a.raw", "a.qcow2")]
    [InlineData("a.raw", "missing.qcow2")]
    [InlineData("missing.qcow2", "a.raw")]
    [InlineData("a.raw")]
    [InlineData("a.raw", "a.qcow2", "a.raw")]
    [InlineData("--image-opts", "driver=raw,file.filename={dir}/a.raw", "driver=qcow2,file.filename={dir}/a.qcow2")]
    [InlineData("--image-opts", "-f", "raw", "a.raw", "a.qcow2")]
    public void OptionsAndErrors(params string[] args)
    {
        string[] expanded = args.Select(a => a.Contains('.', StringComparison.Ordinal) && !a.Contains('=', StringComparison.Ordinal) ? _images[a] : a).ToArray();
        Golden.AssertSame(["compare", .. _images.Expand(expanded)]);
    }

    [Fact]
    public void ProgressGoesToStdout()
    {
        CommandResult result = Tools.Qimg("compare", "-p", _images["a.raw"], _images["a.qcow2"]);
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("    (0.00/100%)\r", result.Stdout, StringComparison.Ordinal);
        Assert.EndsWith("    (100.00/100%)\rImages are identical.\n\n", result.Stdout, StringComparison.Ordinal);
    }
}
