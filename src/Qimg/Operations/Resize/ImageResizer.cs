using System.Globalization;
using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;

namespace Qimg.Operations.Resize;

/// <summary>
/// <c>qemu-img resize</c> as a library operation: opens the image for writing with the resize permission, works out the
/// new size, refuses what qemu-img refuses before touching the image (a size that is not positive, preallocation
/// without growing, shrinking without <see cref="ResizeImageOptions.Shrink"/>), then resizes it exactly as the block
/// layer's truncate does (the format decides what it allows: qcow2 refuses v2 images with snapshots, inconsistent
/// persistent bitmaps, preallocated shrinking…).
/// </summary>
public static class ImageResizer
{
    /// <summary>QEMU's BDRV_MAX_LENGTH: the largest size the block layer accepts.</summary>
    private const long MaxLength = long.MaxValue & ~((1L << 30) - 1);

    /// <summary>Resizes the image; returns the new size in bytes.</summary>
    /// <exception cref="ShrinkNotAllowedException">The image would shrink but <see cref="ResizeImageOptions.Shrink"/> is not set.</exception>
    /// <exception cref="OperationException">
    /// The image cannot be opened ("Could not open 'NAME': …"), the size is refused, or the resize failed (the format's
    /// or the file's message, in QEMU's words).
    /// </exception>
    public static async Task<long> ResizeAsync(ResizeImageOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        FormatNode image = await OpenAsync(options, cancellationToken).ConfigureAwait(false);
        await using (image.ConfigureAwait(false))
        {
            long currentSize = image.Length;
            long newSize = options.Size.Resolve(currentSize);
            if (newSize <= 0)
            {
                throw new OperationException("New image size must be positive");
            }

            if (newSize <= currentSize && options.Preallocation != PreallocationMode.Off)
            {
                throw new OperationException("Preallocation can only be used for growing images");
            }

            if (newSize < currentSize && !options.Shrink)
            {
                throw new ShrinkNotAllowedException();
            }

            if (newSize > MaxLength)
            {
                throw new OperationException(string.Create(CultureInfo.InvariantCulture, $"offset({newSize}) exceeds maximum({MaxLength})"));
            }

            try
            {
                // exact: the user asked for this size, so a driver that could only round it must fail rather than succeed.
                await image.TruncateAsync(newSize, options.Preallocation, exact: true, cancellationToken).ConfigureAwait(false);
                await image.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or NotSupportedException or InvalidOperationException or InvalidDataException or UnauthorizedAccessException)
            {
                throw new OperationException(ErrorText.Describe(e), e);
            }

            return newSize;
        }
    }

    private static async ValueTask<FormatNode> OpenAsync(ResizeImageOptions options, CancellationToken cancellationToken)
    {
        try
        {
            return await DiskImage.OpenAsync(options.Image.FileName, options.OpenOptions with
            {
                Format = options.Image.Format,
                DriverOptions = options.Image.DriverOptions,
                ReadOnly = false,
                Resize = true,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new OperationException($"Could not open '{options.DisplayName}': {ErrorText.Describe(e)}", e);
        }
    }
}
