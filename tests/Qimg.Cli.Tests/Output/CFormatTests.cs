using Qimg.Cli.Output;

namespace Qimg.Cli.Tests.Output;

/// <summary>printf conversions; expected texts from C's printf (glibc rounds the exact binary value half to even).</summary>
public class CFormatTests
{
    [Theory]
    [InlineData(0UL, "0 B")]
    [InlineData(1UL, "1 B")]
    [InlineData(511UL, "511 B")]
    [InlineData(512UL, "512 B")]
    [InlineData(999UL, "999 B")]
    [InlineData(1000UL, "0.977 KiB")]
    [InlineData(1023UL, "0.999 KiB")]
    [InlineData(1024UL, "1 KiB")]
    [InlineData(1152UL, "1.12 KiB")]
    [InlineData(1536UL, "1.5 KiB")]
    [InlineData(4096UL, "4 KiB")]
    [InlineData(69632UL, "68 KiB")]
    [InlineData(331776UL, "324 KiB")]
    [InlineData(405504UL, "396 KiB")]
    [InlineData(1048576UL, "1 MiB")]
    [InlineData(1047552UL, "0.999 MiB")]
    [InlineData(1024000UL, "0.977 MiB")]
    [InlineData(1023999UL, "1e+03 KiB")]
    [InlineData(1073741824UL, "1 GiB")]
    [InlineData(10737418240UL, "10 GiB")]
    [InlineData(9223372036854775807UL, "8 EiB")]
    [InlineData(18446744073709551615UL, "16 EiB")]
    [InlineData(123456789UL, "118 MiB")]
    [InlineData(1047527424UL, "999 MiB")]
    [InlineData(1048576000UL, "0.977 GiB")]
    public void SizeToString_SameAsQemu(ulong value, string expected) => Assert.Equal(expected, CFormat.SizeToString(value));

    [Theory]
    [InlineData(0.0, "0", "0")]
    [InlineData(0.1, "0.10000000000000001", "0.1")]
    [InlineData(0.3333333333333333, "0.33333333333333331", "0.333")]
    [InlineData(1e+20, "1e+20", "1e+20")]
    [InlineData(1.5e-07, "1.4999999999999999e-07", "1.5e-07")]
    [InlineData(123456.0, "123456", "1.23e+05")]
    [InlineData(1.125, "1.125", "1.12")]
    [InlineData(2.5, "2.5", "2.5")]
    [InlineData(0.0001, "0.0001", "0.0001")]
    [InlineData(1e-05, "1.0000000000000001e-05", "1e-05")]
    [InlineData(100.0, "100", "100")]
    [InlineData(1e+16, "10000000000000000", "1e+16")]
    [InlineData(1e+17, "1e+17", "1e+17")]
    [InlineData(1.2345678901234567e+19, "1.2345678901234567e+19", "1.23e+19")]
    [InlineData(-0.5, "-0.5", "-0.5")]
    [InlineData(5e-324, "4.9406564584124654e-324", "4.94e-324")]
    [InlineData(1.7976931348623157e+308, "1.7976931348623157e+308", "1.8e+308")]
    public void G_SameAsPrintf(double value, string g17, string g3)
    {
        Assert.Equal(g17, CFormat.G(value, 17));
        Assert.Equal(g3, CFormat.G(value, 3));
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(4096L, "0x1000")]
    [InlineData(327680L, "0x50000")]
    public void HexAlternate_SameAsPrintf(long value, string expected) => Assert.Equal(expected, CFormat.HexAlternate(value));

    [Fact]
    public void PadRight_CountsUtf8Bytes() => Assert.Equal("é  ", CFormat.PadRight("é", 4));
}
