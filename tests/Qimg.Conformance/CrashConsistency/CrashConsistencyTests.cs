using Xunit.Abstractions;

namespace Qimg.Conformance.CrashConsistency;

/// <summary>
/// Issue 7: every writing command, killed with SIGKILL at random points, leaves an image that <c>qemu-img check</c>
/// accepts (leaks at most) and whose every block is the old data, the new data or zeros. The light version runs here
/// (50 kills per workload); <c>tests/crash/heavy.sh</c> runs the same tests with 1,000 kills and with qemu-img.
/// </summary>
public class CrashConsistencyTests(ITestOutputHelper output)
{
    public static TheoryData<string> Workloads() => [.. CrashWorkloads.All.Select(w => w.Name)];

    [Theory]
    [MemberData(nameof(Workloads))]
    public void KilledRunsLeaveOldNewOrZeroData(string workload)
    {
        string? only = Environment.GetEnvironmentVariable("QIMG_CRASH_WORKLOADS");
        if (!string.IsNullOrEmpty(only) && !only.Split(',').Contains(workload))
        {
            output.WriteLine($"{workload}: not selected by QIMG_CRASH_WORKLOADS");
            return;
        }

        CrashReport report = CrashHarness.Run(CrashWorkloads.ByName(workload), CrashHarness.Program, CrashHarness.Kills, CrashHarness.Seed);
        output.WriteLine(report.Summary);

        // Many kills must land while the command runs, or the run proves nothing.
        Assert.True(report.KilledWhileRunning >= report.Kills / 3, $"too few kills hit the running command: {report.Summary}");
        Assert.True(report.Violations.Count == 0, $"{report.Summary}\n{string.Join('\n', report.Violations)}");
    }
}
