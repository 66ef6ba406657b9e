namespace Qimg.Conformance.CrashConsistency;

/// <summary>A prepared workload: the command line, the target image and the data it may show after a kill.</summary>
public sealed class CrashScenario
{
    /// <summary>Arguments of the program under test (after the program name); refer to <see cref="Target"/>.</summary>
    public required IReadOnlyList<string> Arguments { get; init; }

    /// <summary>The image the command writes; recreated before every run.</summary>
    public required string Target { get; init; }

    /// <summary>The target as it is before each run (copied over <see cref="Target"/>), or null when the command creates it.</summary>
    public string? InitialTarget { get; init; }

    /// <summary>Guest data of the target before the command (null for a target the command creates).</summary>
    public byte[]? OldData { get; init; }

    /// <summary>Guest data of the target after the command completed.</summary>
    public required byte[] NewData { get; init; }

    /// <summary>
    /// The command changes the guest size (resize): a kill may leave the old size, whose blocks are then judged the same
    /// way over the old length.
    /// </summary>
    public bool OldSizeAllowed { get; init; }

    /// <summary>
    /// The number of errors (not leaks) <c>qemu-img check</c> may report on an image left behind: 0 for commands that
    /// start from a clean image; a repair may leave no more than the image had before it started.
    /// </summary>
    public int AllowedCheckErrors { get; init; }
}
