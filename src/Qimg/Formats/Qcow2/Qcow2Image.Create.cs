namespace Qimg.Formats.Qcow2;

public sealed partial class Qcow2Image
{
    /// <summary>
    /// Second half of creation (QEMU's qcow2_co_create after the minimal header is on disk): counts the header, refcount
    /// table and first refcount block, writes the full header (with feature table and data file name), grows the image
    /// to its size with the requested preallocation, and records the backing file.
    /// </summary>
    internal async ValueTask InitializeNewAsync(Qcow2CreateOptions options, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            long first;
            try
            {
                first = await _refcounts.AllocateClustersAsync(3L * _header.ClusterSize, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e) when (!Qcow2ThrowHelper.IsCorruption(e))
            {
                throw CreateStepFailed("Could not allocate clusters for qcow2 header and refcount table: ", e);
            }

            if (first != 0)
            {
                throw new InvalidOperationException("Huh, first cluster in empty image is already in use?");
            }

            if (HasExternalDataFile)
            {
                _header.DataFile = options.DataFile;
            }

            try
            {
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e) when (!Qcow2ThrowHelper.IsCorruption(e))
            {
                throw CreateStepFailed("Could not update qcow2 header: ", e);
            }
        }
        finally
        {
            _lock.Release();
        }

        try
        {
            await TruncateAsync(options.Size, options.Preallocation, false, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (!Qcow2ThrowHelper.IsCorruption(e) && e.HResult != EFBIG)
        {
            // QEMU's error_prepend: a data file on a device says "Could not resize image: Cannot grow device files".
            // EFBIG stays as it is: callers word it themselves ("The image size is too large for file format …").
            throw CreateStepFailed("Could not resize image: ", e);
        }
        if (options.BackingFile is not null)
        {
            try
            {
                await ChangeBackingFileAsync(options.BackingFile, options.BackingFormat, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new IOException($"Could not assign backing file '{options.BackingFile}' with format '{options.BackingFormat ?? "(null)"}': {e.Message}", e);
            }
        }
    }

    private const int EFBIG = 27;

    /// <summary>A failed creation step, worded as QEMU's qcow2_co_create words it: the step, then the cause.</summary>
    internal static Protocols.File.FileIOException CreateStepFailed(string step, IOException cause) =>
        new(step + Diagnostics.ErrorText.Describe(cause), cause.HResult);

    /// <summary>
    /// Records a new backing file name and format in the header (QEMU's qcow2_change_backing_file), or removes them
    /// when <paramref name="backingFile"/> is null. The backing node attached to this image is not changed.
    /// </summary>
    /// <exception cref="IOException">The name does not fit in the first cluster, is longer than 1023 bytes, or the image has a raw data file.</exception>
    public async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        ThrowIfFailed();
        ThrowIfReadOnly();
        if (backingFile is not null && (_header.IsDataFileRaw || System.Text.Encoding.UTF8.GetByteCount(backingFile) > Qcow2Layout.MaxBackingFileNameLength))
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string? oldFile = _header.BackingFile;
            string? oldFormat = _header.BackingFormat;
            _header.BackingFile = backingFile;
            _header.BackingFormat = backingFile is null ? null : backingFormat;
            try
            {
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                _header.BackingFile = oldFile;
                _header.BackingFormat = oldFormat;
                throw;
            }

            BackingFileName = _header.BackingFile;
            BackingFormat = _header.BackingFormat;
        }
        finally
        {
            _lock.Release();
        }
    }
}
