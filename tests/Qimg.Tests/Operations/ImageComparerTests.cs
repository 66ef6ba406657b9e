using Qimg.Formats;
using Qimg.Operations.Compare;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Operations;

public class ImageComparerTests
{
    private static async Task<CompareResult> CompareAsync(string a, string b, bool strict = false, int readAhead = 4)
    {
        await using FormatNode first = await DiskImage.OpenAsync(a, new ImageOpenOptions { Format = "raw" });
        await using FormatNode second = await DiskImage.OpenAsync(b, new ImageOpenOptions { Format = "raw" });
        return await ImageComparer.CompareAsync(first, second, new CompareOptions { Strict = strict, ReadAhead = readAhead });
    }

    private static string Expected(string a, string b, bool strict = false)
    {
        var args = new List<string> { "compare", "-f", "raw", "-F", "raw" };
        if (strict)
        {
            args.Add("-s");
        }

        args.Add(a);
        args.Add(b);
        (int code, string stdout, _) = QemuTools.Run("qemu-img", [.. args]);
        return $"{code}:{stdout}";
    }

    private static string Render(CompareResult result)
    {
        string text = result.SizeMismatch ? "Warning: Image size mismatch!\n" : string.Empty;
        text += result.Outcome switch
        {
            CompareOutcome.Identical => "Images are identical.\n",
            CompareOutcome.ContentMismatch => $"Content mismatch at offset {result.Offset}!\n",
            CompareOutcome.StrictSizeMismatch => "Strict mode: Image size mismatch!\n",
            _ => $"Strict mode: Offset {result.Offset} block status mismatch!\n",
        };
        return $"{(result.AreIdentical ? 0 : 1)}:{text}";
    }

    [Theory]
    [InlineData("write -P 0x11 1M 64k", "write -P 0x11 1M 64k", false)]
    [InlineData("write -P 0x11 1M 64k", "write -P 0x11 1M 64k;write -P 0x12 1M 1", false)]
    [InlineData("write -P 0x11 1M 64k", "write -P 0x11 1M 64k;write -P 0x12 3000000 1", false)]
    [InlineData("write -P 0x11 1M 64k", "write -P 0x11 1M 64k;write -z 5M 1M", false)]
    [InlineData("write -P 0x11 1M 64k", "write -P 0x11 1M 64k;write -P 0x00 5M 1M", true)]
    [InlineData("write -P 0x11 1M 64k", "write -P 0x11 1M 64k", true)]
    [InlineData("write -P 0x11 0 8M", "write -P 0x11 0 8M;write -P 0x13 7M 512", false)]
    public async Task SameSizeMatchesQemuImg(string firstWrites, string secondWrites, bool strict)
    {
        using var dir = new TestDirectory();
        string a = dir.File("a.raw");
        string b = dir.File("b.raw");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", a, "16M");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", b, "16M");
        foreach (string write in firstWrites.Split(';'))
        {
            QemuTools.Ok("qemu-io", "-f", "raw", "-c", write, a);
        }

        foreach (string write in secondWrites.Split(';'))
        {
            QemuTools.Ok("qemu-io", "-f", "raw", "-c", write, b);
        }

        Assert.Equal(Expected(a, b, strict), Render(await CompareAsync(a, b, strict)));
        Assert.Equal(Expected(b, a, strict), Render(await CompareAsync(b, a, strict, readAhead: 1)));
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("write -P 0x21 17M 4k", false)]
    [InlineData("write -z 17M 4k", false)]
    [InlineData("", true)]
    public async Task DifferentSizesMatchQemuImg(string tailWrite, bool strict)
    {
        using var dir = new TestDirectory();
        string small = dir.File("small.raw");
        string large = dir.File("large.raw");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", small, "16M");
        QemuTools.Ok("qemu-img", "create", "-f", "raw", large, "20M");
        QemuTools.Ok("qemu-io", "-f", "raw", "-c", "write -P 0x11 1M 64k", small);
        QemuTools.Ok("qemu-io", "-f", "raw", "-c", "write -P 0x11 1M 64k", large);
        if (tailWrite.Length > 0)
        {
            QemuTools.Ok("qemu-io", "-f", "raw", "-c", tailWrite, large);
        }

        Assert.Equal(Expected(small, large, strict), Render(await CompareAsync(small, large, strict)));
        Assert.Equal(Expected(large, small, strict), Render(await CompareAsync(large, small, strict)));
    }
}
