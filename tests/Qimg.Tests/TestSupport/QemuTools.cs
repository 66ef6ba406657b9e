using System.Diagnostics;

namespace Qimg.Tests.TestSupport;

/// <summary>Runs the reference tools (qemu-img, qemu-io) for interop tests.</summary>
internal static class QemuTools
{
    public static (int ExitCode, string Stdout, string Stderr) Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            // A hung tool must fail the test, not the whole run.
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish");
        }

        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a tool and fails the test unless it exits with 0; returns its standard output.</summary>
    public static string Ok(string program, params string[] args)
    {
        (int code, string stdout, string stderr) = Run(program, args);
        Assert.True(code == 0, $"{program} {string.Join(' ', args)} failed ({code}): {stderr}{stdout}");
        return stdout;
    }

    public static string Img(params string[] args) => Ok("qemu-img", args);

    /// <summary>Runs qemu-io with one -c command per argument after the image name.</summary>
    public static string Io(string image, params string[] commands)
    {
        var args = new List<string>();
        foreach (string command in commands)
        {
            args.Add("-c");
            args.Add(command);
        }

        args.Add(image);
        string output = Ok("qemu-io", [.. args]);
        Assert.DoesNotContain("failed", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Pattern verification", output, StringComparison.Ordinal);
        return output;
    }

    /// <summary>Runs <c>qemu-img check</c> and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) Check(string image)
    {
        (int code, string stdout, string stderr) = Run("qemu-img", "check", image);
        return (code, stdout + stderr);
    }
}

/// <summary>A temporary directory deleted with the test.</summary>
internal sealed class TestDirectory : IDisposable
{
    public TestDirectory()
    {
        Path = Directory.CreateTempSubdirectory("qimg-qcow2-").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
