namespace Qimg.Conformance.CrashConsistency;

/// <summary>
/// One writing command for the crash-consistency harness: how to set up its inputs, what to run, and what the guest
/// data of the target may be after a kill at any point ("old data of this range, new data of this range, or zero").
/// New writing commands plug in as new instances (see <see cref="CrashWorkloads"/>).
/// </summary>
public sealed class CrashWorkload
{
    /// <summary>Short name, used in test names, reports and failure messages.</summary>
    public required string Name { get; init; }

    /// <summary>Creates the inputs in a directory and returns what the harness needs to run and judge the command.</summary>
    public required Func<string, CrashScenario> Setup { get; init; }

    public override string ToString() => Name;
}
