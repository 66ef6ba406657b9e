using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Measure;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Operations;

/// <summary>The measure operation: qcow2's sizes against qemu-img measure for empty images of many shapes.</summary>
public class ImageMeasurerTests
{
    [Theory]
    [InlineData("", "1G")]
    [InlineData("", "1P")]
    [InlineData("", "1000")]
    [InlineData("cluster_size=512,refcount_bits=1", "100M")]
    [InlineData("cluster_size=2M,refcount_bits=64", "10T")]
    [InlineData("extended_l2=on,cluster_size=16k", "1G")]
    [InlineData("extended_l2=on", "3333k")]
    [InlineData("preallocation=full", "1G")]
    [InlineData("preallocation=metadata,compat=0.10", "5G")]
    public async Task Qcow2_EmptyImage_SameSizesAsQemuImg(string options, string size)
    {
        ImageMeasurement measured = await ImageMeasurer.MeasureAsync(new MeasureImageOptions
        {
            TargetFormat = "qcow2",
            Options = options.Length == 0 ? null : options,
            Size = (ulong)Qimg.Options.OptionValues.ParseSize("size", size),
        });

        string[] args = options.Length == 0 ? ["measure", "-O", "qcow2", "--size", size] : ["measure", "-O", "qcow2", "-o", options, "--size", size];
        (int code, string stdout, _) = QemuTools.Run("qemu-img", args);
        Assert.Equal(0, code);
        Assert.Equal(stdout, $"required size: {measured.Required}\nfully allocated size: {measured.FullyAllocated}\n");
        Assert.Null(measured.Bitmaps);
    }

    [Fact]
    public async Task UnknownTarget_IsRefusedInQemuWords()
    {
        OperationException e = await Assert.ThrowsAsync<OperationException>(async () =>
            await ImageMeasurer.MeasureAsync(new MeasureImageOptions { TargetFormat = "nope", Size = 1 }));
        Assert.Equal("Unknown file format 'nope'", e.Message);
    }

    [Fact]
    public async Task BadOption_KeepsBothQemuLines()
    {
        InvalidCreateOptionsException e = await Assert.ThrowsAsync<InvalidCreateOptionsException>(async () =>
            await ImageMeasurer.MeasureAsync(new MeasureImageOptions { TargetFormat = "qcow2", Options = "foo=bar", Size = 1 }));
        Assert.Equal("Invalid parameter 'foo'", e.Message);
        Assert.Equal("Invalid options for file format 'qcow2'", e.FollowUp);
    }
}
