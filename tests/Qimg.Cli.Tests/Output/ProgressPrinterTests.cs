using Qimg.Cli.Output;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests.Output;

public class ProgressPrinterTests
{
    [Theory]
    [InlineData(0f, "0.00")]
    [InlineData(3.125f, "3.12")] // exactly a half: glibc rounds to even (found comparing convert -S 0 with qemu-img)
    [InlineData(4.6875f, "4.69")]
    [InlineData(1.5625f, "1.56")]
    [InlineData(0.375f, "0.38")]
    [InlineData(0.625f, "0.62")]
    [InlineData(99.995f, "100.00")] // the float is just above 99.995
    [InlineData(100f, "100.00")]
    public void FormatPercent_RoundsLikePrintf(float value, string expected)
    {
        Assert.Equal(expected, CFormat.Fixed2(value));
        // The reference: what printf("%4.2f") of the same float prints.
        Assert.Equal(expected, Tools.Run("printf", ["%.2f", ((double)value).ToString("R", System.Globalization.CultureInfo.InvariantCulture)]).Stdout);
    }
}
