using System.Buffers.Binary;
using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>
/// Hostile headers: each gives the one error qemu-img gives (compared with qemu-img info on the same bytes), without a
/// hang or a large allocation.
/// </summary>
[Collection(nameof(Qcow2HeaderTests))]
[CollectionDefinition(nameof(Qcow2HeaderTests), DisableParallelization = true)]
public sealed class Qcow2HeaderTests : IDisposable
{
    // Layout of the template (64 KiB clusters, backing format "raw", backing name "base.img"): the header is 112
    // bytes, the backing format extension sits at 112, the feature table at 128, the end marker at 520 and the
    // backing file name at 528.
    private const int BackingFormatExtension = 112;
    private const int FeatureTableExtension = 128;

    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string, string> Cases() => new()
    {
        { "magic", "Image is not in qcow2 format" },
        { "version1", "Unsupported qcow2 version 1" },
        { "version4", "Unsupported qcow2 version 4" },
        { "cluster_bits8", "Unsupported cluster size: 2^8" },
        { "cluster_bits22", "Unsupported cluster size: 2^22" },
        { "cluster_bits_huge", "Unsupported cluster size: 2^4294967295" },
        { "header_length_short", "qcow2 header too short" },
        { "header_length_long", "qcow2 header exceeds cluster size" },
        { "backing_offset", "Invalid backing file offset" },
        { "compression_type", "qcow2: unknown compression type: 7" },
        { "compression_bit", "qcow2: Compression type incompatible feature bit must not be set" },
        { "zstd_without_bit", "qcow2: Compression type incompatible feature bit must be set" },
        { "unknown_feature", "Unsupported qcow2 feature(s): Unknown incompatible feature: 20" },
        { "named_feature", "Unsupported qcow2 feature(s): raw external data, Unknown incompatible feature: 40" },
        { "subcluster", "Unsupported subcluster size: 256" },
        { "refcount_order", "Reference count entry width too large; may not exceed 64 bits" },
        { "no_refcount_table", "Image does not contain a reference count table" },
        { "refcount_table_large", "Reference count table too large" },
        { "refcount_table_unaligned", "Reference count table offset invalid" },
        { "refcount_table_far", "Reference count table offset invalid" },
        { "snapshots_many", "Snapshot table too large" },
        { "snapshots_unaligned", "Snapshot table offset invalid" },
        { "l1_large", "Active L1 table too large" },
        { "l1_unaligned", "Active L1 table offset invalid" },
        { "l1_small", "L1 table is too small" },
        { "size_huge", "Image is too big" },
        { "crypt_method", "Unsupported encryption method 3" },
        { "extension_too_large", "Header extension too large" },
        { "backing_format_long", "ERROR: ext_backing_format: len=16 too large (>=16)" },
        { "backing_name_past_cluster", "Backing file name too long" },
        { "backing_name_too_long", "Backing file name too long" },
        { "crypto_ext_without_luks", "CRYPTO header extension only expected with LUKS encryption method" },
        { "bitmaps_zero", "found bitmaps extension with zero bitmaps" },
        { "bitmaps_reserved", "bitmaps_ext: Reserved field is not zero" },
        { "bitmaps_length", "bitmaps_ext: Invalid extension length" },
        { "snapshot_extra", "Too much extra metadata in snapshot table entry 0\nYou can force-remove this extra metadata with qemu-img check -r all" },
        { "truncated", "qcow2 header too short" },
        { "garbage", "Image is not in qcow2 format" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Open_HostileHeader_FailsLikeQemu(string name, string message)
    {
        string image = _dir.File(name + ".qcow2");
        File.WriteAllBytes(image, MakeImage(name));

        (int code, _, string stderr) = QemuTools.Run("qemu-img", "info", "-f", "qcow2", image);
        Assert.Equal(1, code);
        Assert.Equal($"qemu-img: Could not open '{image}': {message}\n", stderr);

        long before = GC.GetTotalAllocatedBytes(true);
        Exception e = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using FormatNode node = await DiskImage.OpenAsync(image, new ImageOpenOptions { Format = "qcow2", NoIo = true, NoBacking = true });
        });
        long allocated = GC.GetTotalAllocatedBytes(true) - before;
        Assert.True(e is InvalidDataException or NotSupportedException, e.ToString());
        // The library words hints as QEMU does ("… with qemu-img check -r all"); the CLI puts its own name there.
        Assert.Equal(message, e.Message);
        Assert.True(allocated < 16 << 20, $"{allocated} bytes allocated");
    }

    [Theory]
    [InlineData("data_file_raw_alone", "data-file-raw requires a data file")]
    [InlineData("data_file_missing_name", "'data-file' is required for this image")]
    public async Task Open_DataFileProblems_FailOnlyWhenDataIsNeeded(string name, string message)
    {
        // qemu-img info (BDRV_O_NO_IO) does not look at the data file at all; qemu-io does.
        string image = _dir.File(name + ".qcow2");
        File.WriteAllBytes(image, MakeImage(name));
        Assert.Equal(0, QemuTools.Run("qemu-img", "info", image).ExitCode);
        (_, string stdout, string stderr) = QemuTools.Run("qemu-io", "-r", "-c", "read 0 512", image);
        Assert.Contains($"can't open device {image}: {message}", stdout + stderr, StringComparison.Ordinal);

        await using (FormatNode info = await DiskImage.OpenAsync(image, new ImageOpenOptions { NoIo = true, NoBacking = true }))
        {
        }

        InvalidDataException e = await Assert.ThrowsAsync<InvalidDataException>(async () =>
        {
            await using FormatNode node = await DiskImage.OpenAsync(image, new ImageOpenOptions { NoBacking = true });
        });
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public async Task Open_CorruptImage_ReadOnlyAllowedWritableRefused()
    {
        string image = _dir.File("corrupt.qcow2");
        byte[] bytes = Template();
        SetU64(bytes, 72, 2);
        File.WriteAllBytes(image, bytes);

        (int code, string stdout, string stderr) = QemuTools.Run("qemu-io", "-c", "write 0 512", image);
        Assert.NotEqual(0, code);
        Assert.Contains("qcow2: Image is corrupt; cannot be opened read/write", stdout + stderr, StringComparison.Ordinal);

        await using (FormatNode node = await DiskImage.OpenAsync(image, new ImageOpenOptions { NoBacking = true }))
        {
            var qcow2 = Assert.IsType<Qcow2Image>(node);
            Assert.True(qcow2.IsCorrupt);
        }

        InvalidDataException e = await Assert.ThrowsAsync<InvalidDataException>(async () =>
        {
            await using FormatNode node = await DiskImage.OpenAsync(image, new ImageOpenOptions { ReadOnly = false, NoBacking = true });
        });
        Assert.Equal("qcow2: Image is corrupt; cannot be opened read/write", e.Message);
    }

    [Fact]
    public void Probe_NeedsMagicVersionAndWholeHeader()
    {
        byte[] bytes = Template();
        Assert.Equal(100, Qcow2Driver.Instance.Probe(bytes.AsSpan(0, 2048), null));
        Assert.Equal(0, Qcow2Driver.Instance.Probe(bytes.AsSpan(0, 100), null));
        SetU32(bytes, 4, 1);
        Assert.Equal(0, Qcow2Driver.Instance.Probe(bytes.AsSpan(0, 2048), null));
    }

    [Fact]
    public void Header_RoundTrips_ThroughWriteTo()
    {
        byte[] bytes = Template();
        byte[] cluster = bytes[..65536];
        Qcow2Header header = Qcow2Header.Parse(cluster, writable: false, warn: null);
        Assert.Equal("base.img", header.BackingFile);
        Assert.Equal("raw", header.BackingFormat);
        Assert.Equal(16, header.RefcountBits);
        byte[] rewritten = new byte[65536];
        header.WriteTo(rewritten, writeDataFileName: false);
        Assert.Equal(cluster, rewritten);
    }

    private byte[] Template()
    {
        string path = _dir.File("template.qcow2");
        if (!File.Exists(path))
        {
            QemuTools.Img("create", "-q", "-f", "qcow2", "-u", "-b", "base.img", "-F", "raw", path, "1M");
        }

        return File.ReadAllBytes(path);
    }

    private byte[] MakeImage(string name)
    {
        byte[] b = Template();
        switch (name)
        {
            case "magic": SetU32(b, 0, 0x514649fa); break;
            case "version1": SetU32(b, 4, 1); break;
            case "version4": SetU32(b, 4, 4); break;
            case "cluster_bits8": SetU32(b, 20, 8); break;
            case "cluster_bits22": SetU32(b, 20, 22); break;
            case "cluster_bits_huge": SetU32(b, 20, uint.MaxValue); break;
            case "header_length_short": SetU32(b, 100, 96); break;
            case "header_length_long": SetU32(b, 100, 0x10008); break;
            case "backing_offset": SetU64(b, 8, 0x10001); break;
            case "compression_type": b[104] = 7; break;
            case "compression_bit": SetU64(b, 72, 8); break;
            case "zstd_without_bit": b[104] = 1; break;
            case "unknown_feature": SetU64(b, 72, 0x20); break;
            case "named_feature":
                // The feature table names bit 6 after an autoclear feature entry edited into an incompatible one.
                SetU64(b, 72, 0x80 | 0x40);
                b[FeatureTableExtension + 8 + 7 * 48] = 0;
                b[FeatureTableExtension + 8 + 7 * 48 + 1] = 7;
                break;
            case "subcluster": SetU32(b, 20, 13); SetU64(b, 72, 0x10); break;
            case "refcount_order": SetU32(b, 96, 7); break;
            case "no_refcount_table": SetU32(b, 56, 0); break;
            case "refcount_table_large": SetU32(b, 56, 129); break;
            case "refcount_table_unaligned": SetU64(b, 48, 0x10200); break;
            case "refcount_table_far": SetU64(b, 48, 0x7fffffffffff0000); break;
            case "snapshots_many": SetU32(b, 60, 65537); break;
            case "snapshots_unaligned": SetU32(b, 60, 1); SetU64(b, 64, 0x30008); break;
            case "l1_large": SetU32(b, 36, 0x400001); break;
            case "l1_unaligned": SetU64(b, 40, 0x30100); break;
            case "l1_small": SetU64(b, 24, 1UL << 40); break;
            case "size_huge": SetU32(b, 20, 9); SetU64(b, 8, 0); SetU64(b, 24, 1UL << 62); break;
            case "crypt_method": SetU32(b, 32, 3); break;
            case "extension_too_large": SetU32(b, FeatureTableExtension + 4, 0x10000); break;
            case "backing_format_long": SetU32(b, BackingFormatExtension + 4, 16); break;
            case "backing_name_past_cluster": SetU64(b, 8, 65530); SetU32(b, 16, 8); break;
            case "backing_name_too_long": SetU32(b, 16, 1024); break;
            case "data_file_raw_alone": SetU64(b, 88, 2); break;
            case "data_file_missing_name": SetU64(b, 72, 4); break;
            case "crypto_ext_without_luks": SetU32(b, FeatureTableExtension, 0x0537be77); SetU32(b, FeatureTableExtension + 4, 16); break;
            case "bitmaps_zero":
                SetU64(b, 88, 1);
                SetBitmapsExtension(b, count: 0, reserved: 0, length: 24);
                break;
            case "bitmaps_reserved":
                SetU64(b, 88, 1);
                SetBitmapsExtension(b, count: 1, reserved: 5, length: 24);
                break;
            case "bitmaps_length":
                SetBitmapsExtension(b, count: 1, reserved: 0, length: 16);
                break;
            case "snapshot_extra":
                // One snapshot entry at 0x40000 with 2000 bytes of extra data.
                Array.Resize(ref b, 0x50000);
                SetU32(b, 60, 1);
                SetU64(b, 64, 0x40000);
                SetU32(b, 0x40000 + 36, 2000);
                break;
            case "truncated": return b[..50];
            case "garbage":
                return [.. System.Text.Encoding.ASCII.GetBytes("This is not a disk image at all, just some text that goes on."), .. new byte[4000]];
            default: throw new ArgumentException(name);
        }

        return b;
    }

    private static void SetBitmapsExtension(byte[] b, uint count, uint reserved, uint length)
    {
        // Replace the feature table extension (392 bytes of room) with a bitmaps extension and an end marker.
        Array.Clear(b, FeatureTableExtension, 392);
        SetU32(b, FeatureTableExtension, 0x23852875);
        SetU32(b, FeatureTableExtension + 4, length);
        SetU32(b, FeatureTableExtension + 8, count);
        SetU32(b, FeatureTableExtension + 12, reserved);
        SetU64(b, FeatureTableExtension + 16, 512);
        SetU64(b, FeatureTableExtension + 24, 0x40000);
    }

    private static void SetU32(byte[] b, int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(offset), value);

    private static void SetU64(byte[] b, int offset, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(offset), value);
}
