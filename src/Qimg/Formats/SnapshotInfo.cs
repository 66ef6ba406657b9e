namespace Qimg.Formats;

/// <summary>An internal snapshot as <c>info</c> and <c>snapshot -l</c> show it (QEMU's <c>QEMUSnapshotInfo</c>).</summary>
/// <param name="Id">The snapshot ID string ("1", "2"…).</param>
/// <param name="Name">The tag.</param>
/// <param name="VmStateSize">Size of the saved VM state in bytes.</param>
/// <param name="DateSeconds">Creation time, seconds since the epoch.</param>
/// <param name="DateNanoseconds">Creation time, nanosecond part.</param>
/// <param name="VmClockNanoseconds">Guest clock at the time of the snapshot.</param>
/// <param name="InstructionCount">The icount at the time of the snapshot, or null when not recorded.</param>
/// <param name="VirtualSize">The disk size when the snapshot was taken.</param>
public sealed record SnapshotInfo(
    string Id,
    string Name,
    ulong VmStateSize,
    uint DateSeconds,
    uint DateNanoseconds,
    ulong VmClockNanoseconds,
    ulong? InstructionCount,
    ulong VirtualSize);
