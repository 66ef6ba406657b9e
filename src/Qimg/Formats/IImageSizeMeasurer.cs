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
    /// <exception cref="OptionException">An option is invalid, in QEMU's words for this driver's measure.</exception>
    /// <exception cref="IOException">Reading the source's allocation failed.</exception>
    ValueTask<ImageMeasurement> MeasureAsync(OptionValues options, FormatNode? source, CancellationToken cancellationToken = default);
}
