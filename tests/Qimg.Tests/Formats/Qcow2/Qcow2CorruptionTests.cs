using System.Buffers.Binary;
using Qimg.Formats;
using Qimg.Tests.TestSupport;
using static Qimg.Tests.Formats.Qcow2.Qcow2TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>
/// Inconsistent L1/L2 metadata found while reading or writing: the request fails, QEMU's corruption report is given
/// (the same line qemu-io prints), and a writable image gets the corrupt bit.
/// </summary>
public sealed class Qcow2CorruptionTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("l2_unaligned", "", "L2 table offset 0x30200 unaligned (L1 index: 0)")]
    [InlineData("cluster_unaligned", "", "Cluster allocation offset 0x50200 unaligned (L2 offset: 0x40000, L2 index: 0)")]
    [InlineData("zero_in_v2", "compat=0.10", "Zero cluster entry found in pre-v3 image (L2 offset: 0x40000, L2 index: 0)")]
    [InlineData("invalid_bitmap", "extended_l2=on", "Invalid cluster entry found  (L2 offset: 0x40000, L2 index: 0)")]
    public async Task Read_CorruptEntry_ReportedLikeQemu(string name, string options, string message)
    {
        string image = MakeImage(name, options);
        (_, string stdout, string stderr) = QemuTools.Run("qemu-io", "-r", "-c", "read 0 64k", image);
        string expected = $"qcow2: Image is corrupt: {message}; further non-fatal corruption events will be suppressed";
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
        Assert.Contains("read failed: Input/output error", stdout + stderr, StringComparison.Ordinal);

        var warnings = new List<string>();
        await using FormatNode node = await OpenAsync(image, warning: warnings.Add);
        InvalidDataException e = await Assert.ThrowsAsync<InvalidDataException>(async () => await node.ReadAsync(0, new byte[65536]));
        Assert.Equal(message, e.Message);
        Assert.Equal([expected], warnings);

        // The image stays usable after a non-fatal report; later reports are suppressed.
        await Assert.ThrowsAsync<InvalidDataException>(async () => await node.ReadAsync(0, new byte[512]));
        if (name != "l2_unaligned")
        {
            await node.ReadAsync(1 << 20, new byte[512]);
        }

        Assert.Single(warnings);
    }

    [Theory]
    [InlineData("l2_unaligned", "L2 table offset 0x30200 unaligned (L1 index: 0)")]
    [InlineData("data_on_l1", "Preventing invalid write on metadata (overlaps with active L1 table)")]
    [InlineData("data_on_refcount_block", "Preventing invalid write on metadata (overlaps with refcount block)")]
    public async Task Write_CorruptEntry_MarksImageCorrupt(string name, string message)
    {
        string image = MakeImage(name, "");
        string expected = $"qcow2: Marking image as corrupt: {message}; further corruption events will be suppressed";
        (_, string stdout, string stderr) = QemuTools.Run("qemu-io", "-c", "write 0 512", Copy(image, "qemu.qcow2"));
        Assert.Contains(expected, stdout + stderr, StringComparison.Ordinal);

        var warnings = new List<string>();
        await using (FormatNode node = await OpenAsync(image, readOnly: false, warning: warnings.Add))
        {
            await Assert.ThrowsAsync<InvalidDataException>(async () => await node.WriteAsync(0, new byte[512]));
            Assert.Equal([expected], warnings);
            await Assert.ThrowsAsync<IOException>(async () => await node.ReadAsync(1 << 20, new byte[512]));
        }

        Assert.Equal(2UL, BinaryPrimitives.ReadUInt64BigEndian(File.ReadAllBytes(image).AsSpan(72)) & 2);
        Assert.Contains("corrupt: true", QemuTools.Img("info", image), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_DamagedCompressedCluster_FailsWithIoError()
    {
        string image = _dir.File("compressed.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", image, "1M");
        QemuTools.Io(image, "write -c -P 0x61 0 64k");
        byte[] bytes = File.ReadAllBytes(image);
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(0x40000));
        long dataOffset = (long)(entry & ((1UL << 54) - 1));
        bytes.AsSpan((int)dataOffset, 64).Fill(0xff);
        File.WriteAllBytes(image, bytes);
        (_, string stdout, string stderr) = QemuTools.Run("qemu-io", "-r", "-c", "read 0 64k", image);
        Assert.Contains("read failed: Input/output error", stdout + stderr, StringComparison.Ordinal);

        await using FormatNode node = await OpenAsync(image);
        IOException e = await Assert.ThrowsAsync<IOException>(async () => await node.ReadAsync(0, new byte[65536]));
        Assert.Equal("Input/output error", e.Message);
    }

    private string Copy(string image, string name)
    {
        string copy = _dir.File(name);
        File.Copy(image, copy);
        return copy;
    }

    /// <summary>A 64 KiB-cluster image whose first L2 table is at 0x40000 and first data cluster at 0x50000, then damaged.</summary>
    private string MakeImage(string name, string options)
    {
        string image = _dir.File(name + ".qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", options.Length > 0 ? options : "cluster_size=64k", image, "4M");
        QemuTools.Io(image, "write -P 0x21 0 64k");
        byte[] b = File.ReadAllBytes(image);
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(40));
        Assert.Equal(0x40000UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)l1)) & 0x00fffffffffffe00UL);
        Assert.Equal(0x50000UL, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(0x40000)) & 0x00fffffffffffe00UL);
        switch (name)
        {
            case "l2_unaligned":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)l1), 0x8000000000030200UL);
                break;
            case "cluster_unaligned":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(0x40000), 0x8000000000050200UL);
                break;
            case "data_on_l1":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(0x40000), 0x8000000000000000UL | (ulong)l1);
                break;
            case "data_on_refcount_block":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(0x40000), 0x8000000000020000UL);
                break;
            case "zero_in_v2":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(0x40000), 0x8000000000050001UL);
                break;
            case "invalid_bitmap":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(0x40008), 0x0000000100000001UL);
                break;
        }

        File.WriteAllBytes(image, b);
        return image;
    }
}
