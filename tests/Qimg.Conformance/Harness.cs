using System.Diagnostics;

namespace Qimg.Conformance;

/// <summary>The outcome of one command: exit code, stdout and stderr.</summary>
public sealed record Outcome(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}--- stderr\n{Stderr}";
}

/// <summary>Runs qemu-img, qemu-io and qimg (in-process) for the differential tests.</summary>
public static class Harness
{
    public static Outcome QemuImg(params string[] args) => Run("qemu-img", args);

    public static Outcome Qimg(params string[] args)
    {
        var stdout = new StringWriter { NewLine = "\n" };
        var stderr = new StringWriter { NewLine = "\n" };
        int code = global::Qimg.Cli.CliApplication.Run(args, stdout, stderr);
        return new Outcome(code, stdout.ToString(), stderr.ToString());
    }

    public static string Ok(string program, params string[] args)
    {
        Outcome outcome = Run(program, args);
        Assert.True(outcome.ExitCode == 0, $"{program} {string.Join(' ', args)}: {outcome}");
        return outcome.Stdout;
    }

    public static Outcome Run(string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["LC_ALL"] = "C";
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new Outcome(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>qemu-img's output as qimg would print it (qimg prints its own name where qemu-img prints its).</summary>
    public static Outcome AsQimg(Outcome qemu) => qemu with
    {
        Stdout = qemu.Stdout.Replace("qemu-img", "qimg", StringComparison.Ordinal),
        Stderr = qemu.Stderr.Replace("qemu-img", "qimg", StringComparison.Ordinal),
    };
}

/// <summary>A temporary directory deleted with everything in it.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Path = Directory.CreateTempSubdirectory("qimg-conformance-").FullName;

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
