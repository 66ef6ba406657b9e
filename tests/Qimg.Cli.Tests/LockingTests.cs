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
        // qemu-io holds the image open (and locked) while it runs its one command, a long sleep; it is killed at the
        // end. Probing for its lock with qemu-img info takes a lock too, so a probe that overlaps qemu-io's open can
        // make that open fail: then qemu-io has exited, and it is started again.
        Process holder = StartHolder(image);
        try
        {
            var watch = Stopwatch.StartNew();
            while (true)
            {
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), "qemu-io did not lock the image");
                Thread.Sleep(200);
                if (holder.HasExited)
                {
                    holder.Dispose();
                    holder = StartHolder(image);
                    continue;
                }

                if (Tools.QemuImg("info", image).ExitCode != 0 && !holder.HasExited)
                {
                    break;
                }
            }

            Golden.AssertSame("info", image);
            Golden.AssertSame("info", "-U", "--output=json", image);
            Golden.AssertSame("map", image);
            Golden.AssertSame("map", "-U", "--output=json", image);
            CreateTests.AssertCreateSame(["create", "-f", "qcow2", "-b", image, "-F", "qcow2", "{dir}/overlay.qcow2"]);
        }
        finally
        {
            if (!holder.HasExited)
            {
                holder.Kill();
            }

            holder.WaitForExit(10000);
            holder.Dispose();
        }
    }

    private static Process StartHolder(string image)
    {
        var start = new ProcessStartInfo("qemu-io") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in new[] { "-c", "sleep 120000", image })
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start)!;
    }
}
