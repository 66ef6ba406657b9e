using Qimg.Block;
using Qimg.Copy;
using Qimg.Formats;
using Qimg.Options;
using Qimg.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Copy;

public class CopyEngineTests
{
    private static async Task<FormatNode> CreateRawTargetAsync(string path, long size)
    {
        await FileProtocol.Instance.CreateAsync(path, size, new OptionValues());
        return await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false });
    }

    /// <summary>A sparse raw source with data, explicit zeroes, a hole and a partial-zero area, written by qemu-io.</summary>
    private static string MakeSource(TestDirectory dir)
    {
        string source = dir.File("source.raw");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", source, "64M");
        QemuTools.Ok("qemu-io", "-f", "raw",
            "-c", "write -P 0x11 0 1M",
            "-c", "write -P 0x22 3M 64k",
            "-c", "write -z 5M 1M",
            "-c", "write -P 0x00 8M 2M",
            "-c", "write -P 0x33 8M 512",
            "-c", "write -P 0x44 9M 4k",
            "-c", "write -P 0x55 63M 1M",
            source);
        return source;
    }

    [Theory]
    [InlineData(4096, 8, true)]
    [InlineData(4096, 1, true)]
    [InlineData(4096, 16, false)]
    [InlineData(0, 4, true)]
    [InlineData(65536, 8, true)]
    public async Task RawToRawMatchesQemuImgContentAndAllocation(int minSparse, int workers, bool inOrder)
    {
        using var dir = new TestDirectory();
        string source = MakeSource(dir);
        string expected = dir.File("expected.raw");
        QemuTools.Ok("qemu-img", "convert", "-f", "raw", "-O", "raw", "-S", minSparse.ToString(), source, expected);

        string target = dir.File("target.raw");
        await using (FormatNode input = await DiskImage.OpenAsync(source, new ImageOpenOptions { Format = "raw" }))
        await using (FormatNode output = await CreateRawTargetAsync(target, input.Length))
        {
            await CopyEngine.CopyAsync(
                [new CopySource(input)],
                output,
                new CopyOptions { MinSparse = minSparse, Workers = workers, WriteInOrder = inOrder, TargetIsZero = output.HasZeroInit });
        }

        QemuTools.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", expected, target);
        Assert.Equal(
            QemuTools.Ok("qemu-img", "map", "--output=json", "-f", "raw", expected),
            QemuTools.Ok("qemu-img", "map", "--output=json", "-f", "raw", target));
    }

    [Fact]
    public async Task ConcatenatesSeveralSources()
    {
        using var dir = new TestDirectory();
        string first = dir.File("a.raw");
        string second = dir.File("b.raw");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", first, "3M");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", second, "5M");
        QemuTools.Ok("qemu-io", "-f", "raw", "-c", "write -P 0x61 1M 2M", first);
        QemuTools.Ok("qemu-io", "-f", "raw", "-c", "write -P 0x62 0 1M", "-c", "write -P 0x63 4M 1M", second);
        string expected = dir.File("expected.raw");
        QemuTools.Ok("qemu-img", "convert", "-f", "raw", "-O", "raw", first, second, expected);

        string target = dir.File("target.raw");
        await using (FormatNode a = await DiskImage.OpenAsync(first, new ImageOpenOptions { Format = "raw" }))
        await using (FormatNode b = await DiskImage.OpenAsync(second, new ImageOpenOptions { Format = "raw" }))
        await using (FormatNode output = await CreateRawTargetAsync(target, a.Length + b.Length))
        {
            await CopyEngine.CopyAsync([new CopySource(a), new CopySource(b)], output, new CopyOptions { TargetIsZero = true });
        }

        QemuTools.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", expected, target);
        Assert.Equal(
            QemuTools.Ok("qemu-img", "map", "--output=json", "-f", "raw", expected),
            QemuTools.Ok("qemu-img", "map", "--output=json", "-f", "raw", target));
    }

    [Fact]
    public async Task CopyOffloadProducesTheSameImage()
    {
        using var dir = new TestDirectory();
        string source = MakeSource(dir);
        string target = dir.File("target.raw");
        await using (FormatNode input = await DiskImage.OpenAsync(source, new ImageOpenOptions { Format = "raw" }))
        await using (FormatNode output = await CreateRawTargetAsync(target, input.Length))
        {
            await CopyEngine.CopyAsync([new CopySource(input)], output, new CopyOptions { CopyOffload = true, TargetIsZero = true });
        }

        QemuTools.Ok("qemu-img", "compare", "-f", "raw", "-F", "raw", source, target);
    }

    [Fact]
    public async Task ReportsProgressUpToOneHundred()
    {
        using var dir = new TestDirectory();
        string source = MakeSource(dir);
        var seen = new List<double>();
        var progress = new SynchronousProgress(p => { lock (seen) { seen.Add(p); } });
        await using FormatNode input = await DiskImage.OpenAsync(source, new ImageOpenOptions { Format = "raw" });
        await using FormatNode output = await CreateRawTargetAsync(dir.File("t.raw"), input.Length);
        await CopyEngine.CopyAsync([new CopySource(input)], output, new CopyOptions { Progress = progress, TargetIsZero = true });
        // Reports come as work is done (each data chunk claimed), increasing, up to 100.
        Assert.True(seen[0] > 0);
        Assert.Equal(seen.Order().ToList(), seen);
        Assert.Equal(100, seen.Max(), 3);
    }

    [Fact]
    public async Task ASmallerTargetIsRefused()
    {
        using var dir = new TestDirectory();
        string source = MakeSource(dir);
        await using FormatNode input = await DiskImage.OpenAsync(source, new ImageOpenOptions { Format = "raw" });
        await using FormatNode output = await CreateRawTargetAsync(dir.File("t.raw"), 1 << 20);
        var error = await Assert.ThrowsAsync<CopyException>(() => CopyEngine.CopyAsync([new CopySource(input)], output, new CopyOptions()));
        Assert.Equal("output file is smaller than input file", error.Message);
    }

    private sealed class SynchronousProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
