using System.Buffers.Binary;
using System.Text.Json;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// Sources for the convert --bitmaps tests, made by qemu-img and qemu-io: qcow2 images with enabled, disabled and
/// fine-grained bitmaps holding bits, one whose bitmaps were left in use (inconsistent) by a killed qemu-io, one with an
/// all-ones bitmap table entry, one of an odd size, and sources without bitmap support.
/// </summary>
public sealed class BitmapSources : ImageSet
{
    public BitmapSources()
    {
        Create("-f", "qcow2", "{dir}/bitmaps.qcow2", "12M");
        QemuImg("bitmap", "--add", "{dir}/bitmaps.qcow2", "b1");
        QemuImg("bitmap", "--add", "-g", "128k", "--disable", "{dir}/bitmaps.qcow2", "b2");
        QemuImg("bitmap", "--add", "-g", "4k", "{dir}/bitmaps.qcow2", "b3");
        Io("bitmaps.qcow2", "qcow2", "write -P 1 100k 300k", "write -z 5M 64k", "discard 8M 1M");
        QemuImg("bitmap", "--enable", "{dir}/bitmaps.qcow2", "b2");
        Io("bitmaps.qcow2", "qcow2", "write -P 2 11M 4097");
        QemuImg("bitmap", "--disable", "{dir}/bitmaps.qcow2", "b2");

        System.IO.File.Copy(this["bitmaps.qcow2"], this["inconsistent.qcow2"]);
        Tools.Run("qemu-io", ["-c", "write -P 3 0 64k", "-c", "sigraise 9", this["inconsistent.qcow2"]]);
        QemuImg("bitmap", "--add", "-g", "1M", "{dir}/inconsistent.qcow2", "good");
        Io("inconsistent.qcow2", "qcow2", "write -P 4 2M 1M");

        Create("-f", "qcow2", "{dir}/odd.qcow2", "10241k");
        QemuImg("bitmap", "--add", "-g", "512", "{dir}/odd.qcow2", "tiny");
        QemuImg("bitmap", "--add", "-g", "2M", "{dir}/odd.qcow2", "huge");
        Io("odd.qcow2", "qcow2", "write -P 5 10M 1k", "write -P 5 0 512");

        System.IO.File.Copy(this["bitmaps.qcow2"], this["allones.qcow2"]);
        SetFirstTableEntry(this["allones.qcow2"], 1);

        Create("-f", "qcow2", "{dir}/plain.qcow2", "12M");
        Io("plain.qcow2", "qcow2", "write -P 6 0 1M");
        Create("-f", "qcow2", "-o", "compat=0.10", "{dir}/v2.qcow2", "12M");
        Create("-f", "raw", "{dir}/source.raw", "12M");
        Io("source.raw", "raw", "write -P 7 1M 1M");
    }

    /// <summary>Points the first entry of the first bitmap's table at nothing, with the "all ones" bit.</summary>
    private static void SetFirstTableEntry(string path, ulong value)
    {
        byte[] file = System.IO.File.ReadAllBytes(path);
        int clusterSize = 1 << (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(20));
        long offset = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(100));
        while (BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan((int)offset)) != 0x23852875)
        {
            offset += 8 + ((BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan((int)offset + 4)) + 7) & ~7L);
            Assert.True(offset < clusterSize);
        }

        long directory = (long)BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)offset + 8 + 16));
        long table = (long)BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)directory));
        BinaryPrimitives.WriteUInt64BigEndian(file.AsSpan((int)table), value);
        System.IO.File.WriteAllBytes(path, file);
    }
}

/// <summary>
/// convert --bitmaps and --skip-broken-bitmaps against qemu-img 7.2: the same argv through both tools gives the same
/// output and exit code, and byte-identical targets (so the same bitmap names, granularities, flags and bits).
/// </summary>
public sealed class ConvertBitmapsTests : IClassFixture<BitmapSources>, IDisposable
{
    private readonly BitmapSources _sources;
    private readonly TempDirectory _dir = new();

    public ConvertBitmapsTests(BitmapSources sources)
    {
        _sources = sources;
    }

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string, string> Conversions()
    {
        var data = new TheoryData<string, string>();
        foreach (string source in new[] { "bitmaps.qcow2", "odd.qcow2", "allones.qcow2", "plain.qcow2" })
        {
            // Not -W: out-of-order writes allocate clusters in a different order from run to run, in qemu-img too.
            foreach (string options in new[] { "", "-o cluster_size=512", "-o cluster_size=2M", "-c", "-S 0", "-o extended_l2=on,refcount_bits=1", "-m 4" })
            {
                data.Add(source, options);
            }
        }

        data.Add("inconsistent.qcow2", "--skip-broken-bitmaps");
        data.Add("inconsistent.qcow2", "--skip-broken-bitmaps -o cluster_size=4k");
        return data;
    }

    [Theory]
    [MemberData(nameof(Conversions))]
    public void Convert_Bitmaps_SameAsQemuImg(string source, string options)
    {
        string[] extra = options.Length == 0 ? [] : options.Split(' ');
        AssertSameConversion(["convert", "--bitmaps", "-O", "qcow2", .. extra, _sources[source], _dir.File("out.qcow2")], "out.qcow2");
        JsonElement bitmaps = InfoBitmaps(_dir.File("out.qcow2"));
        JsonElement expected = InfoBitmaps(_sources[source]);
        if (!options.Contains("skip", StringComparison.Ordinal))
        {
            // The same names, granularities and flags as the source.
            Assert.Equal(expected.ToString(), bitmaps.ToString());
        }
    }

    [Fact]
    public void Convert_InconsistentBitmap_FailsWithHint()
    {
        CommandResult result = AssertSameConversion(["convert", "--bitmaps", "-O", "qcow2", _sources["inconsistent.qcow2"], _dir.File("out.qcow2")], "out.qcow2");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("Cannot copy inconsistent bitmap 'b3'\nTry --skip-broken-bitmaps, or use 'qimg bitmap --remove' to delete it\n", result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_dir.File("out.qcow2")));
    }

    [Fact]
    public void Convert_SkipBrokenBitmaps_WarnsForEach()
    {
        CommandResult result = AssertSameConversion(["convert", "--bitmaps", "--skip-broken-bitmaps", "-O", "qcow2", _sources["inconsistent.qcow2"], _dir.File("out.qcow2")], "out.qcow2");
        Assert.Equal("qimg: warning: Skipping inconsistent bitmap 'b3'\nqimg: warning: Skipping inconsistent bitmap 'b2'\nqimg: warning: Skipping inconsistent bitmap 'b1'\n", result.Stderr);
        Assert.Equal("[{\"flags\":[\"auto\"],\"name\":\"good\",\"granularity\":1048576}]", InfoBitmaps(_dir.File("out.qcow2")).GetRawText().Replace(" ", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal));
    }

    public static TheoryData<string> Errors => new()
    {
        "convert --bitmaps -O qcow2 {src:source.raw} {out}",
        "convert --bitmaps -O qcow2 {src:v2.qcow2} {out}",
        "convert --bitmaps -O qcow2 {src:bitmaps.qcow2} {src:plain.qcow2} {out}",
        "convert --bitmaps -O raw {src:bitmaps.qcow2} {out}",
        "convert --bitmaps -O qcow2 -o compat=0.10 {src:bitmaps.qcow2} {out}",
        "convert --skip-broken-bitmaps -O qcow2 {src:bitmaps.qcow2} {out}",
        "convert --bitmaps -f raw -O qcow2 {src:bitmaps.qcow2} {out}",
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void Convert_BitmapErrors_SameAsQemuImg(string command)
    {
        string[] args = command.Split(' ').Select(a => a == "{out}" ? _dir.File("out.img") : a.StartsWith("{src:", StringComparison.Ordinal) ? _sources[a[5..^1]] : a).ToArray();
        AssertSameConversion(args, "out.img");
    }

    [Fact]
    public void Convert_ExistingTargetWithSameBitmap_FailsAfterCopyingOthers()
    {
        // -n into an image that already has "b1": b3 and b2 (QEMU's order) are added, b1 fails; the target keeps b3 and b2.
        string target = _dir.File("target.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", target, "12M");
        Tools.QemuImgOk("bitmap", "--add", "-g", "64k", target, "b1");
        string pristine = _dir.File("pristine.qcow2");
        File.Copy(target, pristine);
        CommandResult result = AssertSameConversion(["convert", "-n", "--bitmaps", "-O", "qcow2", _sources["bitmaps.qcow2"], target], "target.qcow2", pristine);
        Assert.Equal("qimg: Failed to create bitmap b1: Bitmap already exists: b1\n", result.Stderr);
    }

    [Fact]
    public void Convert_ExistingLargerTarget_FailsToPopulate()
    {
        string target = _dir.File("target.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", target, "16M");
        Tools.QemuImgOk("bitmap", "--add", target, "mine");
        string pristine = _dir.File("pristine.qcow2");
        File.Copy(target, pristine);
        CommandResult result = AssertSameConversion(["convert", "-n", "--bitmaps", "-O", "qcow2", _sources["bitmaps.qcow2"], target], "target.qcow2", pristine);
        Assert.Equal("qimg: Failed to populate bitmap b3: Bitmaps are of different sizes (destination size is 16777216, source size is 12582912) and can't be merged\n", result.Stderr);
    }

    [Fact]
    public void Convert_ExistingTargetWithBitmaps_TracksTheCopy()
    {
        // The target's own enabled bitmap records the copy's writes; the source's bitmaps are added next to it.
        string target = _dir.File("target.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", target, "12M");
        Tools.QemuImgOk("bitmap", "--add", "-g", "16k", target, "mine");
        string pristine = _dir.File("pristine.qcow2");
        File.Copy(target, pristine);
        AssertSameConversion(["convert", "-n", "--bitmaps", "-O", "qcow2", _sources["bitmaps.qcow2"], target], "target.qcow2", pristine);
        Assert.Equal(4, InfoBitmaps(target).GetArrayLength());
    }

    /// <summary>
    /// Runs the same argv through qemu-img and qimg, each time with the target in its initial state
    /// (<paramref name="pristine"/> copied over it, or absent), and asserts the same output, exit code and target bytes.
    /// </summary>
    private CommandResult AssertSameConversion(string[] args, string targetName, string? pristine = null)
    {
        string target = _dir.File(targetName);
        void Reset()
        {
            File.Delete(target);
            if (pristine is not null)
            {
                File.Copy(pristine, target);
            }
        }

        Reset();
        CommandResult expected = Golden.Normalize(Tools.QemuImg(args));
        byte[]? expectedBytes = File.Exists(target) ? File.ReadAllBytes(target) : null;
        Reset();
        CommandResult actual = Tools.Qimg(args);
        Golden.AssertEqual(expected, actual, args);
        byte[]? actualBytes = File.Exists(target) ? File.ReadAllBytes(target) : null;
        Assert.Equal(expectedBytes is null, actualBytes is null);
        if (expectedBytes is not null)
        {
            int index = expectedBytes.AsSpan().CommonPrefixLength(actualBytes);
            Assert.True(index == expectedBytes.Length && expectedBytes.Length == actualBytes!.Length, $"Targets differ at byte {index} (sizes {expectedBytes.Length} and {actualBytes!.Length})");
        }

        return actual;
    }

    /// <summary>The "bitmaps" member of qemu-img info's format-specific data (an empty array when absent).</summary>
    private static JsonElement InfoBitmaps(string image)
    {
        using JsonDocument document = JsonDocument.Parse(Tools.QemuImgOk("info", "-U", "--output=json", image));
        JsonElement data = document.RootElement.GetProperty("format-specific").GetProperty("data");
        return data.TryGetProperty("bitmaps", out JsonElement bitmaps) ? bitmaps.Clone() : JsonDocument.Parse("[]").RootElement.Clone();
    }
}
