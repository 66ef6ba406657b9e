using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using Qimg.Formats;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2.Check;

/// <summary>
/// Hostile images: tables that point at themselves or at each other over and over, refcount tables full of nonsense,
/// snapshot tables with absurd sizes. The check must end quickly with a clear verdict (corruptions found, or the check
/// failing), never hang or allocate by a header field; where qemu-img finishes too, the counters are qemu-img's.
/// </summary>
public sealed class Qcow2CheckHostileTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("l2-points-at-itself")]
    [InlineData("l1-points-at-itself")]
    [InlineData("l1-points-at-header")]
    [InlineData("every-refblock-the-same")]
    [InlineData("refblock-far-away")]
    [InlineData("refblock-on-header")]
    [InlineData("snapshot-l1-huge")]
    [InlineData("snapshot-l1-unaligned")]
    [InlineData("snapshot-l1-past-2^63")]
    [InlineData("snapshot-count-huge")]
    [InlineData("snapshot-table-unaligned")]
    [InlineData("compressed-past-end")]
    public async Task Check_HostileImage_SameVerdictAsQemu(string name)
    {
        string image = MakeImage(name);
        (int code, string stdout, _) = QemuTools.Run("qemu-img", "check", "--output=json", image);
        var watch = Stopwatch.StartNew();
        (CheckResult? result, IOException? failure) = await CheckAsync(image, RepairMode.None);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"the check took {watch.Elapsed}");
        if (code == 1 && stdout.Length == 0)
        {
            Assert.NotNull(failure);
            return;
        }

        Assert.Null(failure);
        using JsonDocument json = JsonDocument.Parse(stdout);
        Assert.Equal(Field(json, "corruptions"), result!.Corruptions);
        Assert.Equal(Field(json, "leaks"), result.Leaks);
        Assert.Equal(Field(json, "check-errors"), result.CheckErrors);
        Assert.Equal(Field(json, "image-end-offset"), result.ImageEndOffset);
        Assert.Equal(code, result.CheckErrors != 0 ? 1 : result.Corruptions != 0 ? 2 : result.Leaks != 0 ? 3 : 0);
    }

    [Fact]
    public async Task Check_L1TableFullOfTheSameL2Table_StopsWithAnError()
    {
        // 4 Mi L1 entries (32 MiB, QEMU's limit) that all name the same L2 table: qemu-img goes through all of them and
        // prints tens of millions of lines; qimg stops once it has looked at far more tables than the file can hold.
        string image = Plain("loop.qcow2");
        byte[] bytes = File.ReadAllBytes(image);
        const int Entries = 4 << 20;
        long l1Offset = (bytes.Length + 65535) & ~65535L;
        byte[] l1 = new byte[Entries * 8];
        ulong entry = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan((int)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(40))));
        for (int i = 0; i < Entries; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(l1.AsSpan(i * 8), entry);
        }

        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(36), Entries);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(40), (ulong)l1Offset);
        Array.Resize(ref bytes, (int)l1Offset + l1.Length);
        l1.CopyTo(bytes, l1Offset);
        File.WriteAllBytes(image, bytes);

        var watch = Stopwatch.StartNew();
        var report = new List<CheckMessage>();
        (_, IOException? failure) = await CheckAsync(image, RepairMode.None, report.Add);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"the check took {watch.Elapsed}");
        Assert.NotNull(failure);
        Assert.Equal("File too large", Diagnostics.ErrorText.Describe(failure));
        Assert.Contains(report, m => m.Text.StartsWith("ERROR: the L1 and L2 tables reference far more tables", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("refblock-far-away")]
    [InlineData("every-refblock-the-same")]
    [InlineData("l2-points-at-itself")]
    public async Task RepairAll_HostileImage_EndsCleanOrCorrupt(string name)
    {
        string image = MakeImage(name);
        long lengthBefore = new FileInfo(image).Length;
        (CheckResult? result, IOException? failure) = await CheckAsync(image, RepairMode.All);
        Assert.True(failure is not null || result is not null);

        // The file grew by a bounded amount (a refcount block far past the end is not made room for), and whatever the
        // repair left is an image qemu-img can check.
        Assert.True(new FileInfo(image).Length < lengthBefore + (64L << 20));
        (int code, _) = QemuTools.Check(image);
        Assert.True(code is 0 or 2 or 3, $"qemu-img check: {code}");
    }

    private static async Task<(CheckResult? Result, IOException? Failure)> CheckAsync(string image, RepairMode repair, Action<CheckMessage>? report = null)
    {
        await using FormatNode node = await DiskImage.OpenAsync(image, new ImageOpenOptions { Check = true, ReadOnly = repair == RepairMode.None });
        try
        {
            return (await node.CheckAsync(repair, report), null);
        }
        catch (IOException e)
        {
            return (null, e);
        }
    }

    private static long Field(JsonDocument json, string name) =>
        json.RootElement.TryGetProperty(name, out JsonElement value) ? value.GetInt64() : 0;

    private string Plain(string name)
    {
        string image = _dir.File(name);
        QemuTools.Img("create", "-q", "-f", "qcow2", image, "64M");
        QemuTools.Io(image, "write -P 1 0 192k", "write -P 2 10M 64k", "write -c -P 3 20M 64k");
        return image;
    }

    /// <summary>A plain image (64 KiB clusters: header, refcount table, refcount block, L1, L2, data…) broken as named.</summary>
    private string MakeImage(string name)
    {
        string image = Plain(name + ".qcow2");
        if (name.StartsWith("snapshot", StringComparison.Ordinal))
        {
            QemuTools.Img("snapshot", "-c", "s1", image);
        }

        byte[] b = File.ReadAllBytes(image);
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(40));
        long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)l1)) & 0x00fffffffffffe00UL);
        long refcountTable = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(48));
        long snapshots = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(64));
        switch (name)
        {
            case "l2-points-at-itself":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)l2 + 8), (1UL << 63) | (ulong)l2);
                break;
            case "l1-points-at-itself":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)l1), (1UL << 63) | (ulong)l1);
                break;
            case "l1-points-at-header":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)l1), 1UL << 63);
                break;
            case "every-refblock-the-same":
                ulong block = BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)refcountTable));
                for (int i = 0; i < 65536 / 8; i++)
                {
                    BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)refcountTable + i * 8), block);
                }

                break;
            case "refblock-far-away":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)refcountTable + 8), 0x00f0000000000000UL);
                break;
            case "refblock-on-header":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)refcountTable + 8), 0);
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)refcountTable), 0);
                break;
            case "snapshot-l1-huge":
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan((int)snapshots + 8), 0xffffffff);
                break;
            case "snapshot-l1-unaligned":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)snapshots), 0x10200);
                break;
            case "snapshot-l1-past-2^63":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan((int)snapshots), 0xfff0000000000000UL);
                break;
            case "snapshot-count-huge":
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(60), 0xffffffff);
                break;
            case "snapshot-table-unaligned":
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(64), (ulong)snapshots + 8);
                break;
            case "compressed-past-end":
                // The compressed cluster at guest 20M (L2 index 320): its data moved far past the end of the file.
                int index = (int)l2 + 320 * 8;
                ulong compressed = BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(index));
                BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(index), compressed | 0x0000_0010_0000_0000UL);
                break;
        }

        File.WriteAllBytes(image, b);
        return image;
    }
}
