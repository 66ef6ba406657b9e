using System.Globalization;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations.Convert;
using Qimg.Operations.Create;
using Qimg.Options;
using Qimg.Protocols;

namespace Qimg.Operations.Measure;

/// <summary>
/// <c>qemu-img measure</c> as a library operation: opens the source read-only (and its snapshot), finds the target
/// format, parses the <c>-o</c> options against its create options and the file protocol's (the parser create and
/// convert use), and asks the format's <see cref="IImageSizeMeasurer"/>.
/// </summary>
public static class ImageMeasurer
{
    /// <summary>Measures a new image of the target format.</summary>
    /// <exception cref="InvalidCreateOptionsException">The <c>-o</c> options do not parse for the target format.</exception>
    /// <exception cref="OperationException">
    /// The source cannot be opened or its snapshot loaded, the target format is unknown or cannot measure, or an option
    /// is invalid (QEMU's messages).
    /// </exception>
    public static async Task<ImageMeasurement> MeasureAsync(MeasureImageOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        FormatNode? source = null;
        if (options.Source is ImageSource image)
        {
            source = await OpenAsync(image, options.DisplayName ?? image.FileName, options.OpenOptions, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            if (source is not null && options.Snapshot is SnapshotSelector snapshot)
            {
                await ImageConverter.LoadSnapshotAsync(source, snapshot, cancellationToken).ConfigureAwait(false);
            }

            FormatRegistry registry = options.OpenOptions.Registry;
            IImageSizeMeasurer measurer = FindMeasurer(registry, options.TargetFormat, out IReadOnlyList<OptionDescriptor> formatOptions);
            ProtocolDriver file = registry.FindProtocol("file") ?? throw new InvalidOperationException("The file protocol is not registered");
            IReadOnlyList<OptionDescriptor> descriptors = OptionList.Merge(formatOptions, file.CreateOptions);
            var values = new OptionValues();
            if (options.Options is not null)
            {
                try
                {
                    OptionString.ParseInto(values, options.Options, descriptors);
                }
                catch (OptionException e)
                {
                    throw new InvalidCreateOptionsException(e.Message, options.TargetFormat, e);
                }
            }

            if (options.Size is ulong size)
            {
                values.Set("size", size.ToString(CultureInfo.InvariantCulture));
            }

            try
            {
                return await measurer.MeasureAsync(values, source, options.Secrets, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OptionException or IOException or InvalidDataException or NotSupportedException)
            {
                throw new OperationException(ErrorText.Describe(e), e);
            }
        }
        finally
        {
            if (source is not null)
            {
                await source.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The target format's measurer, refused in QEMU's order and words: an unknown name, a driver without creation, a
    /// driver that cannot measure. A format QEMU measures but qimg does not implement yet is refused as such.
    /// </summary>
    private static IImageSizeMeasurer FindMeasurer(FormatRegistry registry, string name, out IReadOnlyList<OptionDescriptor> createOptions)
    {
        if (registry.FindFormat(name) is FormatDriver format)
        {
            createOptions = format.CreateOptions;
            if (format is IImageSizeMeasurer measurer)
            {
                return measurer;
            }

            if (format is ProbeOnlyFormatDriver { QemuSupportsCreate: true } && name != "luks")
            {
                // QEMU creates these formats but cannot measure them either.
                throw new OperationException($"Block driver '{name}' does not support size measurement");
            }

            ImageCreator.EnsureCanCreate(format);
            throw new OperationException($"Block driver '{name}' does not support size measurement");
        }

        // QEMU finds protocol drivers by this name too.
        if (registry.FindProtocol(name) is ProtocolDriver protocol)
        {
            throw new OperationException(protocol.CreateOptions.Count > 0
                ? $"Block driver '{name}' does not support size measurement"
                : $"Format driver '{name}' does not support image creation");
        }

        throw new OperationException($"Unknown file format '{name}'");
    }

    private static async ValueTask<FormatNode> OpenAsync(ImageSource image, string displayName, ImageOpenOptions open, CancellationToken cancellationToken)
    {
        try
        {
            return await DiskImage.OpenAsync(image.FileName, open with
            {
                Format = image.Format,
                DriverOptions = image.DriverOptions,
                ReadOnly = true,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new OperationException($"Could not open '{displayName}': {ErrorText.Describe(e)}", e);
        }
    }
}
