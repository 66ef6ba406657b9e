using System.Diagnostics;

namespace Qimg.Cli.Tests.Infrastructure;

/// <summary>Runs the reference tools (qemu-img, qemu-io) and qimg itself (in-process).</summary>
public static class Tools
{
    /// <summary>Runs qemu-img with <paramref name="args"/> in the C locale and this process's time zone.</summary>
    public static CommandResult QemuImg(params string[] args) => Run("qemu-img", args);

    /// <summary>Runs qemu-io with <paramref name="args"/>; fails the test when it fails.</summary>
    public static string QemuIo(params string[] args) => Ok("qemu-io", args);

    /// <summary>Runs qemu-img and fails the test when it fails.</summary>
    public static string QemuImgOk(params string[] args) => Ok("qemu-img", args);

    /// <summary>Runs qimg in this process with <paramref name="args"/>.</summary>
    public static CommandResult Qimg(params string[] args) => QimgNamed(ProgramIdentity.DefaultName, args);

    /// <summary>Runs qimg in this process as if invoked under <paramref name="programName"/> (a link named qemu-img, say).</summary>
    public static CommandResult QimgNamed(string programName, params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = CliApplication.Run(args, stdout, stderr, programName);
        return new CommandResult(code, stdout.ToString(), stderr.ToString());
    }

    public static CommandResult Run(string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["LC_ALL"] = "C";
        // qemu-img prints snapshot dates in local time; give it the zone this process (and so qimg) uses.
        start.Environment["TZ"] = TimeZoneInfo.Local.Id is { Length: > 0 } zone && zone != "Local" ? zone : "UTC";
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new CommandResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Ok(string program, string[] args)
    {
        CommandResult result = Run(program, args);
        Assert.True(result.ExitCode == 0, $"{program} {string.Join(' ', args)} failed: {result}");
        return result.Stdout;
    }
}
