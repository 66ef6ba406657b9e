using System.Diagnostics;

namespace Qimg.Tests.Copy;

/// <summary>Runs qemu-img / qemu-io for the interop checks of the copy tests.</summary>
internal static class ExternalTool
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

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    public static string Ok(string program, params string[] args)
    {
        (int code, string stdout, string stderr) = Run(program, args);
        Assert.True(code == 0, $"{program} {string.Join(' ', args)} failed ({code}): {stderr}{stdout}");
        return stdout;
    }
}

/// <summary>A temporary directory deleted with the test.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("qimg-test-").FullName;
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
