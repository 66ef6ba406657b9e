using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>Images for the dd tests: a raw image whose size is not a multiple of 512, a qcow2 image and an overlay.</summary>
public sealed class DdImages : ImageSet
{
    public DdImages()
    {
        Create("-f", "raw", "{dir}/in.img", "1000");
        Io("in.img", "raw", "write -P 5 0 1000");
        Create("-f", "qcow2", "{dir}/in.qcow2", "3M");
        Io("in.qcow2", "qcow2", "write -P 7 1M 64k");
        Create("-f", "qcow2", "-b", "{dir}/in.qcow2", "-F", "qcow2", "{dir}/top.qcow2", "4M");
        Io("top.qcow2", "qcow2", "write -P 9 1056k 4k", "write -z 2M 4k");
    }
}

/// <summary>qimg dd against qemu-img 7.2: output, exit code, and the created images (info, check, content, file length).</summary>
public sealed class DdTests : IClassFixture<DdImages>
{
    private readonly DdImages _images;

    public DdTests(DdImages images)
    {
        _images = images;
    }

    public static TheoryData<string> Commands => new()
    {
        "if={dir}/in.img of={dir}/o.img",
        "if={dir}/in.img of={dir}/o.qcow2 -O qcow2",
        "if={dir}/in.img of={dir}/o.qcow2 -O qcow2 bs=300 skip=1",
        "if={dir}/in.img of={dir}/o.img bs=300 skip=1",
        "if={dir}/in.qcow2 of={dir}/o.img bs=1M skip=1 count=2",
        "if={dir}/in.qcow2 of={dir}/o.qcow2 -O qcow2 count=3 bs=1M",
        "if={dir}/in.qcow2 of={dir}/o.img count=5 bs=1k",
        "-f raw if={dir}/in.qcow2 of={dir}/o.img bs=1k count=1",
        "-U if={dir}/in.qcow2 of={dir}/o.img bs=64k skip=17",
        "if={dir}/top.qcow2 of={dir}/o.qcow2 -O qcow2 bs=4k skip=256",
        "--image-opts if=driver=qcow2,file.filename={dir}/in.qcow2 of={dir}/o.img",
        "of={dir}/o.img if={dir}/in.qcow2 if={dir}/in.img",
        "if={dir}/in.qcow2 of={dir}/in.img",
        // Skipping past the end: an empty output, an error line, and success.
        "if={dir}/in.qcow2 of={dir}/o.img skip=100000",
        "if={dir}/in.qcow2 of={dir}/o.img -O qcow2 skip=9223372036854775807",
        // Errors.
        "if={dir}/in.qcow2 of={dir}/o.img bs=0",
        "if={dir}/in.qcow2 of={dir}/o.img bs=3G",
        "if={dir}/in.qcow2 of={dir}/o.img bs=1x",
        "if={dir}/in.qcow2 of={dir}/o.img count=x",
        "if={dir}/in.qcow2 of={dir}/o.img count=-1",
        "if={dir}/in.qcow2 of={dir}/o.img skip=99E",
        "if={dir}/in.qcow2",
        "of={dir}/o.img",
        "foo",
        "foo=bar",
        "=bar",
        "if={dir}/in.qcow2 of={dir}/o.img -O bogus",
        "if={dir}/missing of={dir}/o.img",
        "if={dir}/missing of={dir}/o.img -O bogus",
        "if={dir}/in.qcow2 of={dir}/nonexist/o.img",
        "-f raw --image-opts if=driver=qcow2,file.filename={dir}/in.qcow2 of={dir}/o.img",
        "--frobnicate if={dir}/in.qcow2 of={dir}/o.img",
        "-O",
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void Dd_SameAsQemuImg(string command) => ImageCommandGolden.AssertSame(_images, ["dd", .. command.Split(' ')]);
}
