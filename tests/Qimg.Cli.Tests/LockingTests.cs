using System.Diagnostics;
using Qimg.Cli.Tests.Infrastructure;

namespace Qimg.Cli.Tests;

/// <summary>info, map and create's backing check on an image that qemu-io holds open for writing, with and without -U.</summary>
public class LockingTests
{
    [Fact]
    public void ImageInUse_SameMessagesAsQemuImg()
    {
        using var dir = new TempDirectory();
        string image = dir.File("busy.qcow2");
        Tools.QemuImgOk("create", "-q", "-f", "qcow2", image, "1M");
        var start = new ProcessStartInfo("qemu-io") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(image);
        using Process holder = Process.Start(start)!;
        try
        {
            // Wait until qemu-io holds its locks (qemu-img info then fails).
            var watch = Stopwatch.StartNew();
            while (Tools.QemuImg("info", image).ExitCode == 0)
            {
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), "qemu-io did not lock the image");
                Thread.Sleep(50);
            }

            Golden.AssertSame("info", image);
            Golden.AssertSame("info", "-U", "--output=json", image);
            Golden.AssertSame("map", image);
            Golden.AssertSame("map", "-U", "--output=json", image);
            CreateTests.AssertCreateSame(["create", "-f", "qcow2", "-b", image, "-F", "qcow2", "{dir}/overlay.qcow2"]);
        }
        finally
        {
            holder.StandardInput.Close();
            if (!holder.WaitForExit(10000))
            {
                holder.Kill();
            }
        }
    }
}
