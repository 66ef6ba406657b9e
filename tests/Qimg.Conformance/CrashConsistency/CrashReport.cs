namespace Qimg.Conformance.CrashConsistency;

/// <summary>What one harness run found: one line per broken invariant, and counts for the summary.</summary>
public sealed record CrashReport(string Workload, string Program, int Kills, int Seed, double RunMilliseconds, int KilledWhileRunning, int NotCreated, IReadOnlyList<string> Violations)
{
    /// <summary>One line for logs and the heavy-run summary.</summary>
    public string Summary =>
        $"workload={Workload} program={Program} kills={Kills} seed={Seed} run={RunMilliseconds:F1}ms killed-while-running={KilledWhileRunning} unfinished-creation={NotCreated} violations={Violations.Count}";
}
