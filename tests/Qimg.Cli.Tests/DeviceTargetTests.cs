using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>
/// create and convert with a character device as the image or its data file (issue 7, section 1): the same messages
/// as qemu-img 7.2, and the device node is still there afterwards (qimg used to delete it when a qcow2 create failed).
/// </summary>
public class DeviceTargetTests
{
    /// <summary>/dev/null (1,3), /dev/zero (1,5) and /dev/full (1,7): each fails a qcow2 create differently in QEMU.</summary>
    [Theory]
    [InlineData(3, "create", "-q", "-f", "qcow2", "{node}", "1M")]
    [InlineData(5, "create", "-q", "-f", "qcow2", "{node}", "1M")]
    [InlineData(7, "create", "-q", "-f", "qcow2", "{node}", "1M")]
    [InlineData(3, "create", "-q", "-f", "raw", "{node}", "1M")]
    [InlineData(3, "convert", "-O", "qcow2", "{dir}/a.qcow2", "{node}")]
    [InlineData(7, "convert", "-O", "qcow2", "{dir}/a.qcow2", "{node}")]
    [InlineData(3, "convert", "-O", "raw", "{dir}/a.qcow2", "{node}")]
    [InlineData(3, "create", "-q", "-f", "qcow2", "-o", "data_file={node}", "{dir}/x.qcow2", "1M")]
    [InlineData(7, "convert", "-O", "qcow2", "-o", "data_file={node}", "{dir}/a.qcow2", "{dir}/x.qcow2")]
    public void FailedCreateOnDevice_KeepsTheNodeAndSaysWhatQemuImgSays(int minor, params string[] args)
    {
        using var temp = new TempDirectory();
        string node = temp.File("n");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", temp.File("a.qcow2"), "1M");
        string[] argv = args.Select(a => a.Replace("{node}", node, StringComparison.Ordinal).Replace("{dir}", temp.Path, StringComparison.Ordinal)).ToArray();

        MakeNode(node, minor);
        CommandResult expected = Golden.Normalize(Tools.QemuImg(argv));
        AssertIsNode(node, minor);
        bool qemuLeftImage = File.Exists(temp.File("x.qcow2"));

        File.Delete(node);
        MakeNode(node, minor);
        CommandResult actual = Tools.Qimg(argv);

        AssertIsNode(node, minor);
        Golden.AssertEqual(expected, actual, argv);
        Assert.Equal(1, actual.ExitCode);
        Assert.Equal(qemuLeftImage, File.Exists(temp.File("x.qcow2")));
    }

    private static void MakeNode(string path, int minor)
    {
        CommandResult result = Tools.Run("mknod", ["-m", "666", path, "c", "1", minor.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.True(result.ExitCode == 0, $"mknod failed: {result}");
    }

    private static void AssertIsNode(string path, int minor)
    {
        CommandResult stat = Tools.Run("stat", ["-c", "%F %t,%T", path]);
        Assert.Equal($"character special file 1,{minor:x}\n", stat.Stdout);
    }
}
