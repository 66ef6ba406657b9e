using Qimg.Options;

namespace Qimg.Cli.Tests;

/// <summary>QemuOpts option strings and sizes, with the values and messages QEMU 7.2 gives.</summary>
public class OptionStringTests
{
    [Theory]
    [InlineData("a=b", true)]
    [InlineData("a=b,,", true)]
    [InlineData("a=b,", false)]
    [InlineData("a=b,,,", false)]
    [InlineData(",a=b", false)]
    [InlineData("", false)]
    public void IsValidOptionList_AsQemuImg(string text, bool valid) => Assert.Equal(valid, OptionString.IsValidOptionList(text));

    [Fact]
    public void Split_EscapesFlagsAndImpliedName()
    {
        IReadOnlyList<OptionPair> pairs = OptionString.Split("x,,y,a=1,,2,flag,nolazy,c=", "file", out bool help);
        Assert.False(help);
        Assert.Equal(
            [new("file", "x,y"), new("a", "1,2"), new("flag", "on"), new("lazy", "off"), new("c", "")],
            pairs);
    }

    [Theory]
    [InlineData("help", true)]
    [InlineData("?", true)]
    [InlineData("cluster_size=4k,help", true)]
    [InlineData("help=1", false)]
    [InlineData("nohelp", false)]
    [InlineData("a=help", false)]
    public void HasHelpOption_AsQemu(string text, bool expected) => Assert.Equal(expected, OptionString.HasHelpOption(text));

    [Fact]
    public void ParseInto_ChecksNamesAndTypes()
    {
        OptionDescriptor[] descriptors =
        [
            new("size", OptionType.Size, "Virtual disk size"),
            new("lazy", OptionType.Bool, "x"),
            new("bits", OptionType.Number, "x"),
        ];
        var values = new OptionValues();
        OptionString.ParseInto(values, "size=1.5k,lazy=yes,bits=0x10,id=skipped", descriptors);
        Assert.Equal(1536UL, values.GetSize("size", 0));
        Assert.True(values.GetBool("lazy", false));
        Assert.Equal(16UL, values.GetNumber("bits", 0));
        Assert.False(values.Contains("id"));
        Assert.Equal("Invalid parameter 'foo'", Assert.Throws<OptionException>(() => OptionString.ParseInto(values, "foo=1", descriptors)).Message);
        Assert.Equal("Parameter 'lazy' expects 'on' or 'off'", Assert.Throws<OptionException>(() => OptionString.ParseInto(values, "lazy=2", descriptors)).Message);
        Assert.Equal("Parameter 'bits' expects a number", Assert.Throws<OptionException>(() => OptionString.ParseInto(values, "bits=1k", descriptors)).Message);
        Assert.Equal("Value '99999999999999999999' is too large for parameter 'bits'", Assert.Throws<OptionException>(() => OptionString.ParseInto(values, "bits=99999999999999999999", descriptors)).Message);
        Assert.Equal("Value '16E' is out of range for parameter 'size'", Assert.Throws<OptionException>(() => OptionString.ParseInto(values, "size=16E", descriptors)).Message);
        Assert.StartsWith("Parameter 'size' expects a non-negative number below 2^64\n", Assert.Throws<OptionException>(() => OptionString.ParseInto(values, "size=-1", descriptors)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FormatHelp_SortedAndPaddedAsQemu()
    {
        OptionDescriptor[] descriptors =
        [
            new("size", OptionType.Size, "Virtual disk size"),
            new("data_file_raw", OptionType.Bool, "The external data file must stay valid as a raw image"),
            new("compat", OptionType.String, "Compatibility level (v2 [0.10] or v3 [1.1])"),
            new("enable", OptionType.String, string.Empty),
        ];
        Assert.Equal(
            "  compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])\n" +
            "  data_file_raw=<bool (on/off)> - The external data file must stay valid as a raw image\n" +
            "  enable=<str>\n" +
            "  size=<size>            - Virtual disk size\n",
            OptionList.FormatHelp(descriptors));
    }

    [Fact]
    public void FormatSummary_AsQemuOptsPrint()
    {
        OptionDescriptor[] descriptors =
        [
            new("encrypt.format", OptionType.String, "x"),
            new("cluster_size", OptionType.Size, "x", "65536"),
            new("extended_l2", OptionType.Bool, "x", "off"),
            new("size", OptionType.Size, "x"),
            new("backing_file", OptionType.String, "x"),
            new("lazy_refcounts", OptionType.Bool, "x", "off"),
            new("refcount_bits", OptionType.Number, "x", "16"),
        ];
        var values = new OptionValues();
        values.Set("size", "1G");
        values.Set("cluster_size", "4k");
        values.Set("lazy_refcounts", "yes");
        values.Set("backing_file", "a,b");
        values.Set("refcount_bits", "-1");
        Assert.Equal(
            "cluster_size=4096 extended_l2=off size=1073741824 backing_file=a,,b lazy_refcounts=yes refcount_bits=-1",
            OptionList.FormatSummary(descriptors, values));
    }

    [Theory]
    [InlineData("0", 0UL)]
    [InlineData("1", 1UL)]
    [InlineData(" +1", 1UL)]
    [InlineData("1b", 1UL)]
    [InlineData("1B", 1UL)]
    [InlineData("1k", 1024UL)]
    [InlineData("1K", 1024UL)]
    [InlineData("1M", 1048576UL)]
    [InlineData("1g", 1073741824UL)]
    [InlineData("1T", 1099511627776UL)]
    [InlineData("1P", 1125899906842624UL)]
    [InlineData("1E", 1152921504606846976UL)]
    [InlineData("15E", 17293822569102704640UL)]
    [InlineData("1.5k", 1536UL)]
    [InlineData("1.k", 1024UL)]
    [InlineData("0.5", null)]
    [InlineData("1.5", null)]
    [InlineData("1.5b", null)]
    [InlineData("0x10", 16UL)]
    [InlineData("0X1f", 31UL)]
    [InlineData("0x", null)]
    [InlineData("0x1.5k", null)]
    [InlineData("010", 10UL)]
    [InlineData("1e3", null)]
    [InlineData("1.5e3k", null)]
    [InlineData("-1", null)]
    [InlineData("-0", null)]
    [InlineData("", null)]
    [InlineData("k", null)]
    [InlineData("1kb", null)]
    [InlineData("1 k", null)]
    [InlineData("18446744073709551615", 18446744073709551615UL)]
    [InlineData("18446744073709551616", null)]
    [InlineData("16E", null)]
    [InlineData("0.0000000001E", 115292150UL)]
    [InlineData("1.9999999999999999999k", 1024UL)] // the fraction rounds to 1.0, which QEMU's fixed-point conversion turns into 0
    [InlineData("0.3k", 307UL)]
    [InlineData("0.99999k", 1024UL)]
    public void QemuSize_ParsesAsQemuStrtosz(string text, ulong? expected)
    {
        QemuSize.ParseResult result = QemuSize.TryParse(text, out ulong value);
        if (expected is null)
        {
            Assert.NotEqual(QemuSize.ParseResult.Ok, result);
        }
        else
        {
            Assert.Equal(QemuSize.ParseResult.Ok, result);
            Assert.Equal(expected.Value, value);
        }
    }

    [Theory]
    [InlineData("18446744073709551616", QemuSize.ParseResult.OutOfRange)]
    [InlineData("16E", QemuSize.ParseResult.OutOfRange)]
    [InlineData("99999999999999999999x", QemuSize.ParseResult.Invalid)]
    public void QemuSize_OverflowKinds(string text, QemuSize.ParseResult expected) => Assert.Equal(expected, QemuSize.TryParse(text, out _));
}
