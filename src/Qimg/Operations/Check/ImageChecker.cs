using Qimg.Formats;

namespace Qimg.Operations.Check;

/// <summary>
/// <c>qemu-img check</c> as a library operation: checks (and optionally repairs) an open image, and when the repair
/// fixed something, checks it again without repairing, so the report describes the image as it is now.
/// </summary>
public static class ImageChecker
{
    /// <summary>
    /// The open options <c>qemu-img check</c> uses on top of <paramref name="options"/>: the image is opened to be
    /// checked (<see cref="ImageOpenOptions.Check"/>), read-only unless something is to be repaired.
    /// </summary>
    public static ImageOpenOptions OpenOptions(ImageOpenOptions options, RepairMode repair) =>
        options with { ReadOnly = repair == RepairMode.None, Check = true };

    /// <summary>Checks <paramref name="image"/> as <c>qemu-img check</c> does.</summary>
    /// <param name="image">The image, opened with <see cref="OpenOptions"/>.</param>
    /// <param name="fileName">The name to report (the name the user gave).</param>
    /// <param name="repair">What to repair.</param>
    /// <param name="report">Receives the check's findings, in QEMU's words, as they are made.</param>
    /// <param name="repaired">Called after a repair that fixed something, before the image is checked again.</param>
    /// <exception cref="NotSupportedException">The format has no check ("This image format does not support checks").</exception>
    /// <exception cref="IOException">A check could not complete (message: the strerror text of the failure).</exception>
    public static async ValueTask<ImageCheckReport> CheckAsync(
        FormatNode image,
        string fileName,
        RepairMode repair,
        Action<CheckMessage>? report,
        Action<CheckResult>? repaired = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!image.SupportsCheck)
        {
            throw new NotSupportedException("This image format does not support checks");
        }

        CheckResult result = await image.CheckAsync(repair, report, cancellationToken).ConfigureAwait(false);
        if (result.CorruptionsFixed == 0 && result.LeaksFixed == 0)
        {
            return new ImageCheckReport(fileName, image.DriverName, result, null);
        }

        repaired?.Invoke(result);
        CheckResult again = await image.CheckAsync(RepairMode.None, report, cancellationToken).ConfigureAwait(false);
        again.CorruptionsFixed = result.CorruptionsFixed;
        again.LeaksFixed = result.LeaksFixed;
        return new ImageCheckReport(fileName, image.DriverName, again, result);
    }
}
