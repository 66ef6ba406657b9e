namespace Qimg.Operations.Dd;

/// <summary>What <see cref="ImageDd.CopyAsync"/> did.</summary>
/// <param name="Size">The size of the output image in bytes.</param>
/// <param name="SkippedPastEnd">
/// The skip reached past the end of the input: the output was created empty, as dd(1) does, and qemu-img reports
/// "INPUT: cannot skip to specified offset" while still succeeding.
/// </param>
public sealed record DdResult(long Size, bool SkippedPastEnd);
