using System.Buffers.Binary;

namespace Qimg.Conformance;

/// <summary>
/// Hostile and broken inputs through the command line: each gives one clear error line in qemu-img's words, exit 1,
/// no stack trace, no hang — and the file is left as it was.
/// </summary>
public class HostileInputTests
{
    /// <summary>A patch to a fresh 64 MiB qcow2 image: big-endian field writes, or a truncation.</summary>
    public static IEnumerable<object[]> Cases() =>
    [
        ["truncated-header", "truncate:50"],
        ["bad-version", "u32@4=9"],
        ["cluster-bits-8", "u32@20=8"],
        ["cluster-bits-22", "u32@20=22"],
        ["cluster-bits-63", "u32@20=63"],
        ["l1-size-huge", "u32@36=0x7fffffff"],
        ["l1-size-too-small", "u32@36=0"],
        ["l1-offset-unaligned", "u64@40=0x30001"],
        ["refcount-table-huge", "u32@56=0x7fffffff"],
        ["refcount-table-offset-unaligned", "u64@48=0x10001"],
        ["refcount-order-7", "u32@96=7"],
        ["snapshots-huge", "u32@60=0x7fffffff"],
        ["snapshots-unaligned", "u32@60=1;u64@64=0x1234"],
        ["backing-name-past-cluster", "u64@8=0xfff0;u32@16=100"],
        ["backing-name-too-long", "u64@8=0x200;u32@16=2000"],
        ["header-length-tiny", "u32@100=50"],
        ["header-length-huge", "u32@100=0x20000"],
        ["incompatible-feature", "u64@72=0x800"],
        ["size-huge", "u64@24=0x7fffffffffffffff"],
        ["crypt-method-negative", "u32@32=0xb4000000"], // printed as a signed int, as QEMU does (found by fuzzing)
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void CorruptHeadersFailLikeQemuImg(string name, string patch)
    {
        using var directory = new TempDirectory();
        string image = directory.File($"{name}.qcow2");
        Harness.Ok("qemu-img", "create", "-q", "-f", "qcow2", image, "64M");
        Apply(image, patch);
        byte[] before = File.ReadAllBytes(image);
        foreach (string[] command in new[] { new[] { "info", image }, ["map", "--output=json", image], ["info", "-f", "qcow2", image], ["compare", image, image], ["convert", "-O", "raw", image, directory.File("out.raw")] })
        {
            Outcome expected = Harness.AsQimg(Harness.QemuImg(command));
            Outcome actual = Harness.Qimg(command);
            Assert.True(expected.ExitCode != 0, $"qemu-img accepted {name}: {expected}");
            // compare exits 2 on open errors; everything else 1.
            AssertOneCleanLine(actual, command[0] == "compare" ? 2 : 1);
            Assert.Equal(expected, actual);
        }

        Assert.Equal(before, File.ReadAllBytes(image));
    }

    [Theory]
    [InlineData(0xC8FF000000000000)] // past what a file can hold: the read fails with EIO (found by fuzzing)
    [InlineData(0x10000000000)] // 1 TiB, past the end of the file: reads as zeros, an empty directory entry
    public void BitmapDirectoryOffsetFailsLikeQemuImg(ulong offset)
    {
        using var directory = new TempDirectory();
        string image = directory.File("bitmaps.qcow2");
        Harness.Ok("qemu-img", "create", "-q", "-f", "qcow2", image, "64M");
        Harness.Ok("qemu-img", "bitmap", "--add", image, "b0");
        byte[] header = File.ReadAllBytes(image).AsSpan(0, 65536).ToArray();
        int extension = header.AsSpan().IndexOf((ReadOnlySpan<byte>)[0x23, 0x85, 0x28, 0x75]);
        Assert.True(extension > 0, "no bitmaps extension");
        using (FileStream file = new(image, FileMode.Open, FileAccess.Write))
        {
            byte[] value = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(value, offset);
            file.Position = extension + 8 + 16;
            file.Write(value);
        }

        byte[] before = File.ReadAllBytes(image);
        foreach (string[] command in new[] { new[] { "info", image }, ["map", "--output=json", image], ["compare", image, image], ["convert", "-O", "raw", image, directory.File("out.raw")] })
        {
            Outcome expected = Harness.AsQimg(Harness.QemuImg(command));
            Outcome actual = Harness.Qimg(command);
            Assert.True(expected.ExitCode != 0, $"qemu-img accepted the directory offset: {expected}");
            AssertOneCleanLine(actual, command[0] == "compare" ? 2 : 1);
            Assert.Equal(expected, actual);
        }

        Assert.Equal(before, File.ReadAllBytes(image));
    }

    [Fact]
    public void GarbageIsProbedAsRawWithoutError()
    {
        using var directory = new TempDirectory();
        string image = directory.File("garbage.img");
        byte[] garbage = new byte[65536];
        new Random(5).NextBytes(garbage);
        File.WriteAllBytes(image, garbage);
        Assert.Equal(Harness.AsQimg(Harness.QemuImg("info", image)), Harness.Qimg("info", image));
        Outcome forced = Harness.Qimg("info", "-f", "qcow2", image);
        Assert.Equal(Harness.AsQimg(Harness.QemuImg("info", "-f", "qcow2", image)), forced);
        AssertOneCleanLine(forced);
    }

    [Fact]
    public void BackingLoopsAreOneLine()
    {
        using var directory = new TempDirectory();
        string first = directory.File("a.qcow2");
        string second = directory.File("b.qcow2");
        Harness.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "b.qcow2", "-F", "qcow2", first, "1M");
        Harness.Ok("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2", second, "1M");
        foreach (string[] command in new[] { new[] { "map", first }, ["info", "--backing-chain", first], ["convert", "-O", "raw", first, directory.File("o")], ["compare", first, second] })
        {
            Outcome actual = Harness.Qimg(command);
            AssertOneCleanLine(actual, command[0] == "compare" ? 2 : 1);
            Assert.EndsWith("a.qcow2' creates an infinite loop.\n", actual.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ASelfReferencingL2TableIsReportedNotFollowed()
    {
        using var directory = new TempDirectory();
        string image = directory.File("self.qcow2");
        Harness.Ok("qemu-img", "create", "-q", "-f", "qcow2", image, "64M");
        Harness.Ok("qemu-io", "-c", "write -P 1 0 64k", image);
        // Point the first L2 entry at the L2 table itself.
        byte[] bytes = File.ReadAllBytes(image);
        ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(40));
        ulong l2Offset = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan((int)l1Offset)) & 0x00fffffffffffe00UL;
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan((int)l2Offset), l2Offset | (1UL << 63));
        File.WriteAllBytes(image, bytes);
        Outcome actual = Harness.Qimg("convert", "-O", "raw", image, directory.File("out.raw"));
        Outcome expected = Harness.AsQimg(Harness.QemuImg("convert", "-O", "raw", image, directory.File("out2.raw")));
        Assert.Equal(expected.ExitCode, actual.ExitCode);
        Assert.DoesNotContain("   at ", actual.Stderr, StringComparison.Ordinal);
    }

    private static void AssertOneCleanLine(Outcome outcome, int exitCode = 1)
    {
        Assert.Equal(exitCode, outcome.ExitCode);
        Assert.DoesNotContain("   at ", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", outcome.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("qimg: ", outcome.Stderr, StringComparison.Ordinal);
        Assert.Single(outcome.Stderr.TrimEnd('\n').Split('\n'));
    }

    private static void Apply(string path, string patch)
    {
        foreach (string step in patch.Split(';'))
        {
            if (step.StartsWith("truncate:", StringComparison.Ordinal))
            {
                using var stream = new FileStream(path, FileMode.Open);
                stream.SetLength(long.Parse(step[9..], System.Globalization.CultureInfo.InvariantCulture));
                continue;
            }

            string[] parts = step.Split('@', '=');
            int offset = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
            ulong value = parts[2].StartsWith("0x", StringComparison.Ordinal)
                ? Convert.ToUInt64(parts[2][2..], 16)
                : ulong.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture);
            using var file = new FileStream(path, FileMode.Open);
            byte[] bytes = new byte[parts[0] == "u32" ? 4 : 8];
            if (bytes.Length == 4)
            {
                BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)value);
            }
            else
            {
                BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
            }

            file.Position = offset;
            file.Write(bytes);
        }
    }
}
