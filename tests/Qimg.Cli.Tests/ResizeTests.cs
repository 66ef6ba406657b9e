using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>Images for the resize tests: raw and qcow2 of several kinds, with data, snapshots and bitmaps.</summary>
public sealed class ResizeImages : ImageSet
{
    public ResizeImages()
    {
        Create("-f", "raw", "{dir}/r.img", "1M");
        Io("r.img", "raw", "write -P 1 0 1M");
        Create("-f", "qcow2", "{dir}/q.qcow2", "1M");
        Create("-f", "qcow2", "-o", "compat=0.10", "{dir}/v2.qcow2", "1M");
        Io("v2.qcow2", "qcow2", "write -P 1 0 64k");
        QemuImg("snapshot", "-c", "s1", "{dir}/v2.qcow2");
        Create("-f", "qcow2", "{dir}/s3.qcow2", "4M");
        Io("s3.qcow2", "qcow2", "write -P 2 0 4M");
        QemuImg("snapshot", "-c", "s1", "{dir}/s3.qcow2");
        Create("-f", "qcow2", "{dir}/b.qcow2", "4M");
        QemuImg("bitmap", "--add", "{dir}/b.qcow2", "bm");
        Create("-f", "qcow2", "{dir}/d.qcow2", "4M");
        Io("d.qcow2", "qcow2", "write -P 3 1M 3M");
        Create("-f", "qcow2", "-o", "cluster_size=4k,refcount_bits=1", "{dir}/c.qcow2", "8M");
        Create("-f", "qcow2", "-o", "extended_l2=on", "{dir}/e.qcow2", "4M");
        Create("-f", "qcow2", "-b", "{dir}/q.qcow2", "-F", "qcow2", "{dir}/top.qcow2", "2M");

        // Overlays smaller than their backing file: growing them must not let the backing file's data show through.
        Create("-f", "qcow2", "{dir}/base.qcow2", "1M");
        Io("base.qcow2", "qcow2", "write -P 0x11 0 1M");
        Create("-f", "qcow2", "-b", "{dir}/base.qcow2", "-F", "qcow2", "{dir}/shrunk.qcow2");
        Io("shrunk.qcow2", "qcow2", "write -P 0x22 0 1M");
        QemuImg("resize", "--shrink", "{dir}/shrunk.qcow2", "520k");
        Create("-f", "qcow2", "-o", "compat=0.10", "-b", "{dir}/base.qcow2", "-F", "qcow2", "{dir}/v2over.qcow2", "256k");
        Create("-f", "qcow2", "-o", "extended_l2=on", "-b", "{dir}/base.qcow2", "-F", "qcow2", "{dir}/l2over.qcow2", "100k");
        Create("-f", "qcow2", "-b", "{dir}/base.qcow2", "-F", "qcow2", "{dir}/over.qcow2", "100k");
    }
}

/// <summary>qimg resize against qemu-img 7.2: output, exit code, and the resized images (info, check, content, file length).</summary>
public sealed class ResizeTests : IClassFixture<ResizeImages>
{
    private readonly ResizeImages _images;

    public ResizeTests(ResizeImages images)
    {
        _images = images;
    }

    public static TheoryData<string> Commands => new()
    {
        // raw: sizes, signs, preallocation modes.
        "-f raw {dir}/r.img 4M",
        "-f raw {dir}/r.img +1G",
        "-f raw {dir}/r.img +1000",
        "-q -f raw {dir}/r.img 2M",
        "-f raw --shrink {dir}/r.img -- -100",
        "-f raw --shrink {dir}/r.img 1000",
        "-f raw --shrink {dir}/r.img -1k",
        "-f raw --preallocation=off {dir}/r.img 3M",
        "-f raw --preallocation=falloc {dir}/r.img 4M",
        "-f raw --preallocation=full {dir}/r.img 4M",
        "-f raw --preallocation=full {dir}/r.img +3333",
        "-f raw --preallocation=metadata {dir}/r.img 4M",
        "-f raw --preallocation=full {dir}/r.img 1M",
        "-f raw --preallocation=falloc --shrink {dir}/r.img 512k",
        "--image-opts driver=raw,file.filename={dir}/r.img,offset=4096 +1M",
        "--image-opts driver=raw,file.filename={dir}/r.img,size=4096 +1M",
        "--image-opts driver=raw,file.filename={dir}/r.img,offset=4096 8E",
        // qcow2: grow with every preallocation, shrink where allowed.
        "{dir}/q.qcow2 +10G",
        "-f qcow2 {dir}/q.qcow2 1536K",
        "--preallocation=metadata {dir}/q.qcow2 +10M",
        "--preallocation=falloc {dir}/q.qcow2 +10M",
        "--preallocation=full {dir}/q.qcow2 +10M",
        "--preallocation=full {dir}/q.qcow2 3000064",
        "--preallocation=metadata {dir}/c.qcow2 +300M",
        "--preallocation=falloc {dir}/c.qcow2 +300M",
        "--preallocation=full {dir}/e.qcow2 +1M",
        "--preallocation=metadata {dir}/e.qcow2 +3333K",
        "--preallocation=full {dir}/d.qcow2 +3M",
        "--shrink {dir}/d.qcow2 2M",
        "--shrink {dir}/d.qcow2 1536K",
        "--shrink {dir}/e.qcow2 1K",
        "--shrink {dir}/q.qcow2 512",
        "{dir}/s3.qcow2 8M",
        "--shrink {dir}/s3.qcow2 1M",
        "{dir}/v2.qcow2 2M",
        "{dir}/b.qcow2 8M",
        "--shrink {dir}/b.qcow2 1M",
        "{dir}/top.qcow2 +1M",
        "--image-opts driver=qcow2,file.filename={dir}/q.qcow2 2M",
        "{dir}/shrunk.qcow2 567k",
        "{dir}/shrunk.qcow2 2M",
        "{dir}/v2over.qcow2 2M",
        "{dir}/l2over.qcow2 1M",
        "{dir}/over.qcow2 +10k",
        "{dir}/over.qcow2 3M",
        "--preallocation=full {dir}/over.qcow2 3M",
        "--preallocation=metadata {dir}/l2over.qcow2 3M",
        // Errors.
        "{dir}/r.img abc",
        "{dir}/r.img 1x",
        "-f raw {dir}/r.img 18E",
        "-f raw {dir}/r.img 9E",
        "-f raw {dir}/r.img -1G",
        "-f raw {dir}/r.img 0",
        "-f raw {dir}/r.img 100",
        "-f raw {dir}/r.img 8388607T",
        "-f raw {dir}/r.img 9223372035781033985",
        "-f raw --preallocation=bogus {dir}/r.img 4M",
        "-f qcow2 {dir}/r.img 5M",
        "-f qcow2 {dir}/q.qcow2 1000",
        "-f qcow2 --shrink {dir}/q.qcow2 1000",
        "-f qcow2 {dir}/q.qcow2 8388607T",
        "--shrink --preallocation=full {dir}/q.qcow2 -- -512",
        "--image-opts -f qcow2 driver=qcow2,file.filename={dir}/q.qcow2 2M",
        "{dir}/missing 2M",
        "{dir}/r.img",
        "{dir}/r.img 5M 6M",
        "--frobnicate {dir}/r.img 5M",
        "-f",
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void Resize_SameAsQemuImg(string command) => ImageCommandGolden.AssertSame(_images, ["resize", .. command.Split(' ')]);
}
