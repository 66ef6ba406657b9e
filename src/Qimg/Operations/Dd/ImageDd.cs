using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations.Create;

namespace Qimg.Operations.Dd;

/// <summary>
/// <c>qemu-img dd</c> as a library operation: opens the input read-only, creates the output (its format's defaults, the
/// size of the input from the skip on, as limited by the count), opens it and copies the input's bytes into it from
/// offset 0. Every byte is written, zeroes included, as qemu-img writes them, so the output is fully allocated.
/// </summary>
public static class ImageDd
{
    /// <summary>The copy unit. qemu-img copies one block at a time; the bytes written do not depend on the unit.</summary>
    private const int ChunkSize = 1 << 20;

    /// <summary>Creates the output and copies the input into it.</summary>
    /// <exception cref="OperationException">
    /// An image cannot be opened ("Could not open 'NAME': …"), the output format is unknown or cannot be created
    /// ("Unknown file format", "Format driver '…' does not support image creation"), creating it failed ("OUT: error
    /// while creating output image: …"), or a read or write failed ("error while reading from input image file: …").
    /// </exception>
    public static async Task<DdResult> CopyAsync(DdOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BlockSize, 1);
        FormatNode input = await OpenAsync(options.Input, options.InputName, options.OpenOptions with { ReadOnly = true }, cancellationToken).ConfigureAwait(false);
        await using (input.ConfigureAwait(false))
        {
            if (options.OpenOptions.Registry.FindFormat(options.OutputFormat) is null)
            {
                throw new OperationException("Unknown file format");
            }

            long blockSize = options.BlockSize;
            long size = input.Length;
            if (options.Count is long count && count <= long.MaxValue / blockSize && count * blockSize < size)
            {
                size = count * blockSize;
            }

            // A skip past the end (or too large to multiply out) gives an empty output, as dd(1) does.
            long skip = options.Skip ?? 0;
            bool pastEnd = skip > long.MaxValue / blockSize || size < skip * blockSize;
            long inputStart = pastEnd ? size : skip * blockSize;
            long outputSize = size - inputStart;

            ImageCreation creation = await ImageCreator.PrepareAsync(new CreateImageOptions
            {
                FileName = options.Output,
                Format = options.OutputFormat,
                Size = (ulong)outputSize,
                Registry = options.OpenOptions.Registry,
                Policy = options.OpenOptions.Policy,
                Warning = options.OpenOptions.Warning,
            }, cancellationToken).ConfigureAwait(false);
            try
            {
                await creation.CreateAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new OperationException($"{options.Output}: error while creating output image: {ErrorText.Describe(e)}", e);
            }

            // qemu-img cannot honour --image-opts for the output: it opens the file it created, by name and format.
            FormatNode output = await OpenAsync(
                new ImageSource(options.Output, options.OutputFormat, null),
                options.Output,
                options.OpenOptions with { ReadOnly = false, ForceShare = false },
                cancellationToken).ConfigureAwait(false);
            await using (output.ConfigureAwait(false))
            {
                await CopyRangeAsync(input, output, inputStart, size, cancellationToken).ConfigureAwait(false);
                await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            return new DdResult(outputSize, pastEnd);
        }
    }

    private static async ValueTask CopyRangeAsync(FormatNode input, FormatNode output, long start, long end, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[(int)Math.Min(ChunkSize, Math.Max(end - start, 0))];
        long outputOffset = 0;
        for (long offset = start; offset < end;)
        {
            Memory<byte> chunk = buffer.AsMemory(0, (int)Math.Min(buffer.Length, end - offset));
            try
            {
                await input.ReadAsync(offset, chunk, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                throw new OperationException("error while reading from input image file: " + ErrorText.Describe(e), e);
            }

            try
            {
                await output.WriteAsync(outputOffset, chunk, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException)
            {
                throw new OperationException("error while writing to output image file: " + ErrorText.Describe(e), e);
            }

            offset += chunk.Length;
            outputOffset += chunk.Length;
        }
    }

    private static async ValueTask<FormatNode> OpenAsync(ImageSource image, string displayName, ImageOpenOptions open, CancellationToken cancellationToken)
    {
        try
        {
            return await DiskImage.OpenAsync(image.FileName, open with
            {
                Format = image.Format,
                DriverOptions = image.DriverOptions,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new OperationException($"Could not open '{displayName}': {ErrorText.Describe(e)}", e);
        }
    }
}
