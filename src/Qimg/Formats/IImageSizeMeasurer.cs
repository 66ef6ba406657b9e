using Qimg.Options;

namespace Qimg.Formats;

/// <summary>
/// A format driver that can tell how large a new image of its format would be (QEMU's <c>bdrv_measure</c>, what
/// <c>qemu-img measure</c> prints): for an empty image of a given size, or for a copy of an open image.
/// </summary>
public interface IImageSizeMeasurer
{
    /// <summary>
    /// The sizes of a new image created with <paramref name="options"/> (its create options, "size" among them), holding
    /// the content of <paramref name="source"/> when one is given (its size then replaces the "size" option).
    /// </summary>
    /// <param name="options">The create options, "size" among them.</param>
    /// <param name="source">The image whose copy is measured, or null.</param>
    /// <param name="secrets">The secrets options may name (<c>--object secret</c>), or null.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <exception cref="OptionException">An option is invalid, in QEMU's words for this driver's measure.</exception>
    /// <exception cref="IOException">Reading the source's allocation failed.</exception>
    ValueTask<ImageMeasurement> MeasureAsync(OptionValues options, FormatNode? source, SecretStore? secrets, CancellationToken cancellationToken = default);
}
