using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Qimg.Conformance.CrashConsistency;

/// <summary>
/// Runs a <see cref="CrashWorkload"/> as a child process, kills it with SIGKILL at pseudo-random points spread over
/// its measured run time, and judges every image left behind: <c>qemu-img check</c> must find no more errors than
/// allowed (leaks are fine), and every 4 KiB block of the guest data must be the old data of that block, its new data,
/// or zeros. Settings come from the environment, so that the same tests serve as the light suite and the heavy run:
/// <c>QIMG_CRASH_PROGRAM</c> (default: the qimg built next to the tests; /usr/bin/qemu-img works too),
/// <c>QIMG_CRASH_KILLS</c> (default 50), <c>QIMG_CRASH_SEED</c> (default 7), <c>QIMG_CRASH_REPORT</c> (a file that
/// gets one summary line per run) and <c>QIMG_CRASH_IMAGE_MIB</c> (see <see cref="CrashWorkloads"/>).
/// </summary>
public static partial class CrashHarness
{
    public const int BlockSize = 4096;

    public static string Program => Environment.GetEnvironmentVariable("QIMG_CRASH_PROGRAM") is { Length: > 0 } program
        ? program
        : Path.Combine(AppContext.BaseDirectory, "qimg");

    public static int Kills => int.TryParse(Environment.GetEnvironmentVariable("QIMG_CRASH_KILLS"), out int kills) ? kills : 50;

    public static int Seed => int.TryParse(Environment.GetEnvironmentVariable("QIMG_CRASH_SEED"), out int seed) ? seed : 7;

    /// <summary>Runs <paramref name="kills"/> killed runs of the workload and returns what they left behind.</summary>
    public static CrashReport Run(CrashWorkload workload, string program, int kills, int seed)
    {
        using var directory = new TempDirectory();
        CrashScenario scenario = workload.Setup(directory.Path);
        string raw = directory.File("result.raw");

        // Uninterrupted runs first: they must give the new data (so the harness cannot pass by judging nothing), and
        // their median time, less the program's start-up time (`--version`), is the span the kills are spread over.
        var times = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            Reset(scenario);
            var watch = Stopwatch.StartNew();
            using Process process = Start(program, scenario.Arguments);
            process.WaitForExit();
            times.Add(watch.Elapsed.TotalMilliseconds);
            string? failure = Judge(scenario, raw, old: null, requireNew: true);
            if (failure is not null)
            {
                throw new InvalidOperationException($"{workload.Name}: the uninterrupted run of {program} (exit {process.ExitCode}) did not give the expected image: {failure}");
            }
        }

        times.Sort();
        double runTime = times[2];
        double startTime = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var watch = Stopwatch.StartNew();
            using Process process = Start(program, ["--version"]);
            process.WaitForExit();
            startTime = Math.Min(startTime, watch.Elapsed.TotalMilliseconds);
        }

        double firstKill = Math.Min(startTime * 0.8, runTime * 0.5);
        var random = new Random(seed);
        var violations = new List<string>();
        int killedWhileRunning = 0;
        int notCreated = 0;
        for (int kill = 0; kill < kills; kill++)
        {
            // From just before the program starts working to the end of a median run.
            double delay = firstKill + (random.NextDouble() * (runTime - firstKill));
            Reset(scenario);
            using (Process process = Start(program, scenario.Arguments))
            {
                var watch = Stopwatch.StartNew();
                while (watch.Elapsed.TotalMilliseconds < delay)
                {
                    if (delay - watch.Elapsed.TotalMilliseconds > 2)
                    {
                        Thread.Sleep(1);
                    }
                    else
                    {
                        Thread.SpinWait(50);
                    }
                }

                if (!process.HasExited)
                {
                    killedWhileRunning++;
                    try
                    {
                        process.Kill(); // SIGKILL on Unix
                    }
                    catch (InvalidOperationException)
                    {
                        // Exited in between.
                    }
                }

                process.WaitForExit();
            }

            string? broken = Judge(scenario, raw, scenario.OldData, requireNew: false);
            if (broken is not null && scenario.InitialTarget is null && IsUnfinishedCreation(scenario.Target))
            {
                notCreated++;
                continue;
            }

            if (broken is not null)
            {
                violations.Add($"{workload.Name}: kill #{kill} (seed {seed}, delay {delay.ToString("F2", CultureInfo.InvariantCulture)} ms of a {runTime.ToString("F1", CultureInfo.InvariantCulture)} ms run): {broken}");
            }
        }

        var report = new CrashReport(workload.Name, program, kills, seed, runTime, killedWhileRunning, notCreated, violations);
        if (Environment.GetEnvironmentVariable("QIMG_CRASH_REPORT") is { Length: > 0 } reportFile)
        {
            File.AppendAllLines(reportFile, [report.Summary, .. violations.Take(20).Select(v => "  " + v)]);
        }

        return report;
    }

    /// <summary>The guest data of an image (through <c>qemu-img convert -O raw</c>).</summary>
    public static byte[] ReadGuest(string image, string raw)
    {
        Harness.Ok("qemu-img", "convert", "-O", "raw", image, raw);
        return File.ReadAllBytes(raw);
    }

    /// <summary>The error count in <c>qemu-img check</c>'s report (0 when it reports none).</summary>
    public static int CheckErrors(string stdout)
    {
        Match match = ErrorsLine().Match(stdout);
        return match.Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    /// <summary>Null when the target meets the invariant, else what broke it.</summary>
    private static string? Judge(CrashScenario scenario, string raw, byte[]? old, bool requireNew)
    {
        Outcome check = Harness.QemuImg("check", scenario.Target);
        int errors = CheckErrors(check.Stdout);
        if (check.ExitCode is not (0 or 2 or 3) || errors > scenario.AllowedCheckErrors || (requireNew && check.ExitCode == 2))
        {
            return $"qemu-img check: exit {check.ExitCode}, {errors} errors (allowed {scenario.AllowedCheckErrors}): {FirstLines(check.Stdout + check.Stderr)}";
        }

        Outcome convert = Harness.QemuImg("convert", "-O", "raw", scenario.Target, raw);
        if (convert.ExitCode != 0)
        {
            return $"the image cannot be read: {FirstLines(convert.Stderr)}";
        }

        byte[] actual = File.ReadAllBytes(raw);
        bool oldSize = scenario.OldSizeAllowed && old is not null && actual.Length == old.Length && !requireNew;
        if (actual.Length != scenario.NewData.Length && !oldSize)
        {
            return $"the guest size is {actual.Length}, expected {scenario.NewData.Length}";
        }

        for (int offset = 0; offset < actual.Length; offset += BlockSize)
        {
            ReadOnlySpan<byte> block = actual.AsSpan(offset, BlockSize);
            if (block.SequenceEqual(scenario.NewData.AsSpan(offset, BlockSize)))
            {
                continue;
            }

            if (requireNew)
            {
                return $"block at {offset:#,0} (0x{offset:x}) differs from the new data";
            }

            if (block.IndexOfAnyExcept((byte)0) < 0 || (old is not null && offset + BlockSize <= old.Length && block.SequenceEqual(old.AsSpan(offset, BlockSize))))
            {
                continue;
            }

            return $"block at {offset:#,0} (0x{offset:x}) is neither its new data, {(old is null ? string.Empty : "its old data, ")}nor zeros (first bytes {Convert.ToHexString(block[..16])}; found elsewhere in the {Origin(block, scenario)})";
        }

        return null;
    }

    /// <summary>Where a wrong block's bytes come from, when they are some other block's data.</summary>
    private static string Origin(ReadOnlySpan<byte> block, CrashScenario scenario)
    {
        foreach ((string name, byte[]? data) in new[] { ("new data", scenario.NewData), ("old data", scenario.OldData) })
        {
            if (data is null)
            {
                continue;
            }

            for (int offset = 0; offset < data.Length; offset += BlockSize)
            {
                if (block.SequenceEqual(data.AsSpan(offset, BlockSize)))
                {
                    return $"{name} at 0x{offset:x}";
                }
            }
        }

        return "inputs: nowhere";
    }

    /// <summary>
    /// Whether a new target was killed while it was being created: it does not exist, or holds no more than the creation
    /// metadata (header, refcount table and block, L1 table: four clusters), so no guest data at all. qemu-img has the
    /// same window (its header points to the refcount table before that is written); judging the creation order is
    /// the create tests' job, not this harness's.
    /// </summary>
    private static bool IsUnfinishedCreation(string target)
    {
        if (!File.Exists(target))
        {
            return true;
        }

        using FileStream file = File.OpenRead(target);
        Span<byte> header = stackalloc byte[24];
        if (file.Length < header.Length)
        {
            return true;
        }

        file.ReadExactly(header);
        int clusterBits = header[23];
        return clusterBits is >= 9 and <= 21 && file.Length <= 4L << clusterBits;
    }

    private static void Reset(CrashScenario scenario)
    {
        if (scenario.InitialTarget is null)
        {
            File.Delete(scenario.Target);
        }
        else
        {
            File.Copy(scenario.InitialTarget, scenario.Target, overwrite: true);
        }
    }

    private static Process Start(string program, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["LC_ALL"] = "C";
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process = Process.Start(start)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return process;
    }

    private static string FirstLines(string text) => string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Take(4));

    [GeneratedRegex(@"^(\d+) errors were found on the image", RegexOptions.Multiline)]
    private static partial Regex ErrorsLine();
}
