using Qimg.Operations.Resize;
using Qimg.Options;

namespace Qimg.Tests.Operations;

/// <summary>The size operand of resize: sign, QEMU size syntax, and qemu-img's signed 64-bit arithmetic.</summary>
public class ResizeTargetTests
{
    [Theory]
    [InlineData("1G", 1000, 1L << 30)]
    [InlineData("+1M", 1000, 1000 + (1L << 20))]
    [InlineData("-512", 1024, 512)]
    [InlineData("-1G", 1L << 20, (1L << 20) - (1L << 30))]
    [InlineData("9E", 0, unchecked((long)(9UL << 60)))]
    public void Resolve_AsQemuImg(string text, long current, long expected) =>
        Assert.Equal(expected, ResizeTarget.Parse(text).Resolve(current));

    [Theory]
    [InlineData("abc", "Parameter 'size' expects a non-negative number below 2^64")]
    [InlineData("", "Parameter 'size' expects a non-negative number below 2^64")]
    [InlineData("18E", "Value '18E' is out of range for parameter 'size'")]
    public void Parse_RefusesAsQemu(string text, string message) =>
        Assert.StartsWith(message, Assert.Throws<OptionException>(() => ResizeTarget.Parse(text)).Message);
}
