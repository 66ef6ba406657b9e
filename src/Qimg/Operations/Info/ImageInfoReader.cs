using Qimg.Diagnostics;
using Qimg.Formats;

namespace Qimg.Operations.Info;

/// <summary>
/// Collects <see cref="ImageInfo"/> as <c>qemu-img info</c> does: each image is opened on its own, without its backing
/// file (QEMU's <c>BDRV_O_NO_BACKING</c>); with the backing chain requested, the backing files are then opened one by
/// one by their full names and stored formats.
/// </summary>
public static class ImageInfoReader
{
    /// <summary>The information about an open image (QEMU's <c>bdrv_query_image_info</c>).</summary>
    public static ImageInfo Read(FormatNode image)
    {
        long actualSize = image.GetAllocatedSize();
        string? backing = string.IsNullOrEmpty(image.BackingFileName) ? null : image.BackingFileName;
        return new ImageInfo
        {
            FileName = image.FileName,
            Format = image.DriverName,
            VirtualSize = image.Length,
            ActualSize = actualSize >= 0 ? actualSize : null,
            Encrypted = image.IsEncrypted ? true : null,
            ClusterSize = image.ClusterSize != 0 ? image.ClusterSize : null,
            DirtyFlag = image.IsDirty,
            FormatSpecific = image.GetFormatSpecificInfo(),
            BackingFileName = backing,
            FullBackingFileName = backing is null ? null : ImagePaths.FullBackingFileName(image.FileName, backing),
            BackingFileFormat = backing is null || string.IsNullOrEmpty(image.BackingFormat) ? null : image.BackingFormat,
            Snapshots = image.Snapshots.Count == 0 ? null : image.Snapshots,
        };
    }

    /// <summary>
    /// Opens <paramref name="source"/> (without its backing file) and reads its information, then, when
    /// <paramref name="backingChain"/> is set, does the same for each backing file down the chain.
    /// </summary>
    /// <param name="source">The top image.</param>
    /// <param name="displayName">The name qemu-img quotes when the top image cannot be opened (the file name, or the --image-opts string).</param>
    /// <param name="options">Open options (share mode, policy, registry…); Format, NoBacking and DriverOptions are set here.</param>
    /// <param name="backingChain">Walk the whole backing chain.</param>
    /// <exception cref="OperationException">An image cannot be opened ("Could not open 'NAME': …"), or the chain loops.</exception>
    public static async ValueTask<IReadOnlyList<ImageInfo>> CollectAsync(
        ImageSource source, string displayName, ImageOpenOptions options, bool backingChain, CancellationToken cancellationToken = default)
    {
        var list = new List<ImageInfo>();
        var seenNames = new HashSet<string>(StringComparer.Ordinal);
        var seenFiles = new HashSet<string>(StringComparer.Ordinal);
        string? fileName = source.FileName;
        string? format = source.Format;
        // qemu-img info opens with BDRV_O_NO_BACKING | BDRV_O_NO_IO: metadata only (a qcow2 data file stays closed).
        Formats.ImageOpenOptions openOptions = options with { Format = source.Format, NoBacking = true, NoIo = true, ReadOnly = true, DriverOptions = source.DriverOptions };
        string name = displayName;
        string? referencedBy = null;
        while (fileName is not null)
        {
            // qemu-img compares the names as strings; qimg also compares the files they lead to, so that "./a" naming
            // "./a" is a loop too and not an ever-longer name.
            if (!seenNames.Add(name) || (CanonicalPath(fileName) is string canonical && !seenFiles.Add(canonical)))
            {
                throw new OperationException($"Backing file '{name}' creates an infinite loop.");
            }

            ImageInfo info;
            try
            {
                // Backing files pass the open policy as they do when the chain is opened whole (a library caller's
                // RestrictTo confines them here too).
                FormatNode image = referencedBy is null
                    ? await DiskImage.OpenAsync(fileName, openOptions with { Format = format }, cancellationToken).ConfigureAwait(false)
                    : await DiskImage.OpenNamedBackingAsync(referencedBy, fileName, openOptions with { Format = format }, cancellationToken).ConfigureAwait(false);
                await using (image.ConfigureAwait(false))
                {
                    info = Read(image);
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
            {
                throw new OperationException($"Could not open '{name}': {ErrorText.Describe(e)}", e);
            }

            list.Add(info);
            if (!backingChain)
            {
                break;
            }

            referencedBy = info.FileName;
            fileName = info.FullBackingFileName;
            if (fileName is null && info.BackingFileName is not null)
            {
                throw new OperationException($"Could not determine absolute backing filename, but backing filename '{info.BackingFileName}' present");
            }

            name = fileName ?? string.Empty;
            format = info.BackingFileFormat;
            openOptions = openOptions with { DriverOptions = null };
        }

        return list;
    }

    private static string? CanonicalPath(string fileName)
    {
        if (ImagePaths.HasProtocol(fileName) && !fileName.StartsWith("file:", StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            string full = Path.GetFullPath(Protocols.File.FileProtocol.PathOf(fileName));
            return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
