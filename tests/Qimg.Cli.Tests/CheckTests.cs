using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// <c>check</c> against qemu-img 7.2: the same exit status, stdout (human and JSON) and stderr on clean and broken images;
/// repairs that leave the same image (byte for byte) as qemu-img's own repair of a copy, which qemu-img then checks the
/// same way and <c>qemu-img compare</c> calls identical; and the error paths of the command line.
/// </summary>
public class CheckTests : IClassFixture<CheckImages>
{
    private readonly CheckImages _images;

    public CheckTests(CheckImages images)
    {
        _images = images;
    }

    [Theory]
    [MemberData(nameof(CheckImages.CleanNames), MemberType = typeof(CheckImages))]
    public void Check_CleanImage_SameAsQemuImg(string name)
    {
        string path = _images[name];
        CommandResult human = Golden.AssertSame("check", path);
        Golden.AssertSame("check", "--output=json", path);
        Golden.AssertSame("check", "-q", "-f", "qcow2", path);
        Assert.Equal(0, human.ExitCode);
        Assert.StartsWith("No errors were found on the image.\n", human.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(CheckImages.CorruptNames), MemberType = typeof(CheckImages))]
    public void Check_CorruptImage_SameAsQemuImg(string name)
    {
        string path = _images[name];
        CommandResult human = Golden.AssertSame("check", path);
        Golden.AssertSame("check", "--output=json", path);
        Assert.NotEqual(0, human.ExitCode);
        Assert.NotEqual(string.Empty, human.Stderr);
    }

    [Theory]
    [MemberData(nameof(CheckImages.CorruptNames), MemberType = typeof(CheckImages))]
    public void RepairLeaks_SameImageAsQemuImg(string name) => AssertSameRepair(name, "leaks", "human");

    [Theory]
    [MemberData(nameof(CheckImages.CorruptNames), MemberType = typeof(CheckImages))]
    public void RepairAll_SameImageAsQemuImg(string name) => AssertSameRepair(name, "all", "human");

    [Theory]
    [InlineData("refcount-zero.qcow2", "all")]
    [InlineData("l2-on-refcount-table.qcow2", "leaks")]
    [InlineData("dirty.qcow2", "all")]
    [InlineData("leak.qcow2", "leaks")]
    public void RepairJson_SameAsQemuImg(string name, string mode) => AssertSameRepair(name, mode, "json");

    [Theory]
    [MemberData(nameof(CheckImages.CleanNames), MemberType = typeof(CheckImages))]
    public void RepairAll_CleanImage_LeavesItUnchanged(string name)
    {
        using var dir = new TempDirectory();
        string copy = Copy(name, dir, "image.qcow2");
        byte[] before = File.ReadAllBytes(copy);
        CommandResult result = Tools.Qimg("check", "-r", "all", copy);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("", result.Stderr);
        if (name is not "bitmaps.qcow2")
        {
            // (Bitmaps are stored again when an image opened for writing is closed, as QEMU does.)
            Assert.True(before.AsSpan().SequenceEqual(File.ReadAllBytes(copy)), "a clean image was modified");
        }
    }

    [Theory]
    [InlineData("check")]
    [InlineData("check", "{dir}/plain.qcow2", "{dir}/v2.qcow2")]
    [InlineData("check", "-r", "some", "{dir}/leak.qcow2")]
    [InlineData("check", "--output=xml", "{dir}/plain.qcow2")]
    [InlineData("check", "-T", "bogus", "{dir}/plain.qcow2")]
    [InlineData("check", "-T", "none", "{dir}/plain.qcow2")]
    [InlineData("check", "-U", "-r", "leaks", "{dir}/leak.qcow2")]
    [InlineData("check", "-U", "{dir}/leak.qcow2")]
    [InlineData("check", "{dir}/no-such-image.qcow2")]
    [InlineData("check", "-f", "raw", "{dir}/plain.qcow2")]
    [InlineData("check", "-f", "raw", "--output=json", "{dir}/plain.qcow2")]
    [InlineData("check", "-q", "{dir}/refcount-high.qcow2")]
    [InlineData("check", "-q", "--output=json", "{dir}/refcount-zero.qcow2")]
    [InlineData("check", "--image-opts", "driver=qcow2,file.filename={dir}/plain.qcow2")]
    [InlineData("check", "--image-opts", "--output=json", "driver=qcow2,file.filename={dir}/l2-past-end.qcow2")]
    [InlineData("check", "--image-opts", "-f", "qcow2", "driver=qcow2,file.filename={dir}/plain.qcow2")]
    [InlineData("check", "--output=json", "json:{\"file.filename\":\"{dir}/leak.qcow2\"}")]
    public void Variants_SameAsQemuImg(params string[] args) => Golden.AssertSame(_images.Expand(args));

    [Fact]
    public void Check_RawImage_NotSupported()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("disk.raw");
        Tools.QemuImgOk("create", "-q", "-f", "raw", raw, "1M");
        CommandResult result = Golden.AssertSame("check", raw);
        Assert.Equal(63, result.ExitCode);
        Golden.AssertSame("check", "-f", "raw", "--output=json", raw);

        // Opened for writing, a probed raw image warns as it does in qemu-img.
        Golden.AssertSame("check", "-r", "leaks", raw);
    }

    [Theory]
    [InlineData("leaks")]
    [InlineData("all")]
    public void Repair_CleanImageWithSnapshotAndBitmap_KeepsTheSnapshot(string mode)
    {
        // qemu-img 7.2 drops the internal snapshot of such an image on any repair (its writable check-mode open
        // rewrites the header with the snapshot count it has cleared) and frees the snapshot's clusters as leaks.
        // qimg finds nothing to repair and keeps snapshot, bitmap and data (README, compatibility notes).
        using var dir = new TempDirectory();
        string image = dir.File("snapshot-bitmap.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", image, "8M");
        Tools.QemuIo("-c", "write -P 1 0 64k", image);
        Tools.QemuImgOk("snapshot", "-c", "s1", image);
        Tools.QemuImgOk("bitmap", "--add", image, "b0");
        Tools.QemuIo("-c", "write -P 2 0 16k", image);
        byte[] before = File.ReadAllBytes(image);

        CommandResult repair = Tools.Qimg("check", "-r", mode, image);
        Assert.Equal(0, repair.ExitCode);
        Assert.StartsWith("No errors were found on the image.\n", repair.Stdout, StringComparison.Ordinal);
        // The writable open stores the bitmap again (elsewhere), as QEMU's does; everything else stays.
        Assert.StartsWith("No errors were found on the image.\n", Tools.QemuImgOk("check", image), StringComparison.Ordinal);
        Assert.Contains("s1", Tools.QemuImgOk("snapshot", "-l", image), StringComparison.Ordinal);
        Assert.Contains("\"b0\"", Tools.QemuImgOk("info", "--output=json", image), StringComparison.Ordinal);
        string original = dir.File("original.qcow2");
        File.WriteAllBytes(original, before);
        Tools.QemuImgOk("compare", original, image);
        string snapshotBefore = dir.File("before.raw");
        string snapshotAfter = dir.File("after.raw");
        Tools.QemuImgOk("convert", "-l", "snapshot.name=s1", "-O", "raw", original, snapshotBefore);
        Tools.QemuImgOk("convert", "-l", "snapshot.name=s1", "-O", "raw", image, snapshotAfter);
        Assert.Equal(File.ReadAllBytes(snapshotBefore), File.ReadAllBytes(snapshotAfter));
    }

    [Fact]
    public void Open_SnapshotExtraDataTooLarge_SameHintAsQemuImg()
    {
        // The open fails with a hint naming the check command (qemu-img's text, with this program's name).
        CommandResult result = Golden.AssertSame("info", _images["snapshot-extra-data.qcow2"]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("check -r all", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_MissingBackingFile_FailsToOpen()
    {
        using var dir = new TempDirectory();
        string image = dir.File("top.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2", image, "1M");
        CommandResult result = Golden.AssertSame("check", image);
        Assert.Equal(1, result.ExitCode);
    }

    /// <summary>
    /// Repairs a copy of <paramref name="name"/> with qemu-img and another with qimg, and compares everything: exit status,
    /// stdout and stderr of the repair, the files byte for byte, qemu-img's check of both, and (when qemu-img can read
    /// them) qemu-img compare of the two and of the repaired image with the original guest content.
    /// </summary>
    private void AssertSameRepair(string name, string mode, string output)
    {
        using var dir = new TempDirectory();
        string byQemu = Copy(name, dir, "by-qemu.qcow2");
        string byQimg = Copy(name, dir, "by-qimg.qcow2");
        string[] qemuArgs = ["check", "-r", mode, "--output=" + output, byQemu];
        string[] qimgArgs = ["check", "-r", mode, "--output=" + output, byQimg];
        CommandResult expected = Golden.Normalize(Tools.QemuImg(qemuArgs));
        expected = expected with { Stdout = expected.Stdout.Replace(byQemu, byQimg, StringComparison.Ordinal), Stderr = expected.Stderr.Replace(byQemu, byQimg, StringComparison.Ordinal) };
        CommandResult actual = Tools.Qimg(qimgArgs);
        Golden.AssertEqual(expected, actual, qimgArgs);

        byte[] qemuBytes = File.ReadAllBytes(byQemu);
        byte[] qimgBytes = File.ReadAllBytes(byQimg);
        int common = qemuBytes.AsSpan().CommonPrefixLength(qimgBytes);
        Assert.True(common == qemuBytes.Length && common == qimgBytes.Length, $"the repaired files differ at byte {common} (lengths {qemuBytes.Length} and {qimgBytes.Length})");

        CommandResult qemuCheck = Tools.QemuImg("check", byQemu);
        CommandResult qimgCheck = Tools.QemuImg("check", byQimg);
        Assert.Equal(qemuCheck.ExitCode, qimgCheck.ExitCode);
        Assert.Equal(qemuCheck.Stdout, qimgCheck.Stdout);
        if (qemuCheck.ExitCode == 0)
        {
            CommandResult compare = Tools.QemuImg("compare", byQemu, byQimg);
            Assert.True(compare.ExitCode == 0, compare.ToString());
        }

        // Where qemu-img's repair kept every guest byte, qimg's does too.
        string original = _images[name];
        if (Tools.QemuImg("compare", "-U", original, byQemu).ExitCode == 0)
        {
            CommandResult unchanged = Tools.QemuImg("compare", "-U", original, byQimg);
            Assert.True(unchanged.ExitCode == 0, unchanged.ToString());
        }
    }

    private string Copy(string name, TempDirectory dir, string copyName)
    {
        string copy = dir.File(copyName);
        File.Copy(_images[name], copy);
        if (name == "overlay.qcow2")
        {
            // Its backing file is named relative to it.
            File.Copy(_images["plain.qcow2"], dir.File("plain.qcow2"));
        }

        return copy;
    }
}
