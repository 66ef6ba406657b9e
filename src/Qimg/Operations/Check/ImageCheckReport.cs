using Qimg.Formats;

namespace Qimg.Operations.Check;

/// <summary>What <c>qemu-img check</c> reports about an image (QEMU's <c>ImageCheck</c>).</summary>
/// <param name="FileName">The name the image was given by (for <c>--image-opts</c>, the option string).</param>
/// <param name="Format">The format driver's name.</param>
/// <param name="Result">
/// The counters of the last check. After a repair that fixed something, these are the counters of the check that ran
/// again without repairing, with the fixed counts of the repairing check.
/// </param>
/// <param name="Repaired">The counters of the repairing check when it fixed something (null otherwise).</param>
public sealed record ImageCheckReport(string FileName, string Format, CheckResult Result, CheckResult? Repaired);
