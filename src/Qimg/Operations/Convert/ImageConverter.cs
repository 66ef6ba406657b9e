using Qimg.Block;
using Qimg.Copy;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations.Bitmap;
using Qimg.Operations.Create;
using Qimg.Options;
using Qimg.Protocols;

namespace Qimg.Operations.Convert;

/// <summary>
/// <c>qemu-img convert</c> as a library operation: opens the sources, creates (or opens, with -n) the target, and
/// copies with <see cref="CopyEngine"/>. Checks and messages follow qemu-img 7.2, in its order.
/// </summary>
public static class ImageConverter
{
    private const int SectorSize = 512;

    /// <summary>Converts <see cref="ConvertImageOptions.Sources"/> into <see cref="ConvertImageOptions.Target"/>.</summary>
    /// <exception cref="OperationException">A user error or a failure, in qemu-img's words.</exception>
    /// <exception cref="OptionException">An invalid <c>-o</c> option.</exception>
    /// <exception cref="CopyException">Reading, writing or block status failed during the copy.</exception>
    public static async Task ConvertAsync(ConvertImageOptions options, CancellationToken cancellationToken = default)
    {
        if (options.Sources.Count == 0)
        {
            throw new OperationException("Must specify image file name");
        }

        var sources = new List<FormatNode>(options.Sources.Count);
        FormatNode? target = null;
        try
        {
            long totalSize = 0;
            foreach (string name in options.Sources)
            {
                FormatNode source = await OpenSourceAsync(options, name, cancellationToken).ConfigureAwait(false);
                sources.Add(source);
                totalSize += source.Length;
            }

            if (options.Snapshot is SnapshotSelector snapshot)
            {
                if (snapshot.IdOrName && sources.Count > 1)
                {
                    throw new OperationException("No support for concatenating multiple snapshot");
                }

                await LoadSnapshotAsync(sources[0], snapshot, cancellationToken).ConfigureAwait(false);
            }

            FormatDriver? targetFormat = null;
            OptionValues? createValues = null;
            string? backingFile = options.BackingFile;
            if (!options.SkipCreate)
            {
                (targetFormat, createValues) = PrepareCreate(options, totalSize);
                backingFile = createValues.GetString("backing_file") ?? backingFile;
            }

            bool targetHasBacking = backingFile is not null;
            if (options.TargetIsZero && targetHasBacking)
            {
                throw new OperationException("Cannot use --target-is-zero when the destination image has a backing file");
            }

            if (sources.Count > 1 && backingFile is not null)
            {
                throw new OperationException("Having a backing file for the target makes no sense when concatenating multiple input images");
            }

            if (createValues is not null && createValues.Contains("backing_file") && !createValues.Contains("backing_fmt"))
            {
                throw new OperationException("Use of backing file requires explicit backing format");
            }

            CopyOptions copy = options.Copy;
            if (copy.Compressed)
            {
                CheckCompression(targetFormat, createValues);
            }

            if (options.Bitmaps)
            {
                if (sources.Count > 1)
                {
                    throw new OperationException("Copying bitmaps only possible with single source");
                }

                CheckBitmaps(sources[0], options.SkipBrokenBitmaps);
            }

            if (!options.SkipCreate)
            {
                await CreateTargetAsync(options, targetFormat!, createValues!, totalSize, cancellationToken).ConfigureAwait(false);
            }

            if (!CacheMode.TryParse(options.TargetCacheMode, out CacheMode targetCache))
            {
                throw new OperationException($"Invalid cache option: {options.TargetCacheMode}");
            }

            target = await OpenTargetAsync(options, targetCache, cancellationToken).ConfigureAwait(false);
            if (options.Bitmaps && target is not IPersistentBitmapHost { SupportsPersistentBitmaps: true })
            {
                throw new OperationException($"Format driver '{target.DriverName}' does not support bitmaps");
            }

            if (copy.Compressed && !(options.Registry.FindFormat(target.DriverName)?.SupportsCompressedWrites ?? false))
            {
                throw new OperationException("Compression not supported for this file format");
            }

            if (options.SkipCreate && target.Length < totalSize)
            {
                throw new OperationException("output file is smaller than input file");
            }

            long targetBackingLength = targetHasBacking && !options.SkipCreate && target.Backing is BlockNode backing ? backing.Length : -1;
            bool targetIsZero = options.TargetIsZero;
            if (!targetIsZero && !options.SkipCreate && copy.MinSparse != 0 && !targetHasBacking)
            {
                targetIsZero = target.HasZeroInit;
            }

            var copySources = new List<CopySource>(sources.Count);
            foreach (FormatNode source in sources)
            {
                copySources.Add(new CopySource(source, source.Backing));
            }

            await CopyEngine.CopyAsync(
                copySources,
                target,
                copy with
                {
                    TargetIsZero = targetIsZero,
                    TargetHasBacking = targetHasBacking,
                    TargetBackingLength = targetBackingLength,
                    Warning = copy.Warning ?? options.Warning,
                },
                cancellationToken).ConfigureAwait(false);

            if (options.Bitmaps)
            {
                await CopyBitmapsAsync(sources[0], target, options, cancellationToken).ConfigureAwait(false);
            }

            // With cache=unsafe this flushes nothing to disk, but it writes out cached metadata.
            await target.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (target is not null)
            {
                await target.DisposeAsync().ConfigureAwait(false);
            }

            foreach (FormatNode source in sources)
            {
                await source.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// qemu-img's convert_check_bitmaps: the source format must support persistent bitmaps, and (unless skipped) none of
    /// them may be inconsistent.
    /// </summary>
    private static void CheckBitmaps(FormatNode source, bool skipBroken)
    {
        if (source is not IPersistentBitmapHost { SupportsPersistentBitmaps: true } host)
        {
            throw new OperationException("Source lacks bitmap support");
        }

        foreach (DirtyBitmap bitmap in host.DirtyBitmaps)
        {
            if (bitmap.IsPersistent && !skipBroken && bitmap.IsInconsistent)
            {
                throw new OperationException(
                    $"Cannot copy inconsistent bitmap '{bitmap.Name}'",
                    "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it\n");
            }
        }
    }

    /// <summary>
    /// qemu-img's convert_copy_bitmaps, after the data: each persistent bitmap of the source (in QEMU's order) is added
    /// to the target with its name, granularity and enabled state, and its bits merged in; the target stores them when it
    /// is closed. Inconsistent ones are skipped with a warning when allowed.
    /// </summary>
    private static async ValueTask CopyBitmapsAsync(FormatNode source, FormatNode target, ConvertImageOptions options, CancellationToken cancellationToken)
    {
        foreach (DirtyBitmap bitmap in ((IPersistentBitmapHost)source).DirtyBitmaps)
        {
            if (!bitmap.IsPersistent)
            {
                continue;
            }

            if (options.SkipBrokenBitmaps && bitmap.IsInconsistent)
            {
                options.Warning?.Invoke($"Skipping inconsistent bitmap '{bitmap.Name}'");
                continue;
            }

            try
            {
                await DirtyBitmapCommands.AddAsync(target, bitmap.Name, bitmap.Granularity, !bitmap.IsEnabled, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationException e)
            {
                throw new OperationException($"Failed to create bitmap {bitmap.Name}: {e.Message}", e, e.Hint);
            }

            try
            {
                DirtyBitmapCommands.Merge(target, bitmap.Name, source, bitmap.Name);
            }
            catch (OperationException e)
            {
                try
                {
                    await DirtyBitmapCommands.RemoveAsync(target, bitmap.Name, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationException)
                {
                    // QEMU ignores a failure to remove it again.
                }

                throw new OperationException($"Failed to populate bitmap {bitmap.Name}: {e.Message}", e, e.Hint);
            }
        }
    }

    private static async ValueTask<FormatNode> OpenSourceAsync(ConvertImageOptions options, string name, CancellationToken cancellationToken)
    {
        var open = new ImageOpenOptions
        {
            Format = options.SourceFormat,
            ReadOnly = true,
            Cache = options.SourceCache,
            ForceShare = options.ForceShare,
            NoShare = true,
            Policy = options.Policy,
            Registry = options.Registry,
            Warning = options.Warning,
            Message = options.Message,
        };
        try
        {
            return options.OpenSource is not null
                ? await options.OpenSource(name, open, cancellationToken).ConfigureAwait(false)
                : await DiskImage.OpenAsync(name, open, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            throw new OperationException($"Could not open '{name}': {ErrorText.Describe(e)}", e);
        }
    }

    internal static async ValueTask LoadSnapshotAsync(FormatNode source, SnapshotSelector snapshot, CancellationToken cancellationToken)
    {
        try
        {
            if (snapshot.IdOrName)
            {
                // The short form tries the string as an ID first, then as a name.
                try
                {
                    await source.LoadSnapshotAsync(snapshot.Id, null, cancellationToken).ConfigureAwait(false);
                }
                catch (KeyNotFoundException)
                {
                    await source.LoadSnapshotAsync(null, snapshot.Id, cancellationToken).ConfigureAwait(false);
                }
            }
            else
            {
                await source.LoadSnapshotAsync(snapshot.Id, snapshot.Name, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (KeyNotFoundException e)
        {
            throw new OperationException("Failed to load snapshot: Can't find snapshot", e);
        }
        catch (Exception e) when (e is NotSupportedException or IOException or InvalidDataException)
        {
            throw new OperationException("Failed to load snapshot: " + e.Message, e);
        }
    }

    private static (FormatDriver Format, OptionValues Values) PrepareCreate(ConvertImageOptions options, long totalSize)
    {
        string formatName = options.TargetFormat ?? "raw";
        FormatDriver format = options.Registry.FindFormat(formatName)
            ?? throw new OperationException($"Unknown file format '{formatName}'");
        ProtocolDriver protocol = ImageCreator.FindProtocol(options.Registry, options.Target);
        ImageCreator.EnsureCanCreate(format);

        IReadOnlyList<OptionDescriptor> descriptors = OptionList.Merge(format.CreateOptions, protocol.CreateOptions);
        var values = new OptionValues();
        if (options.CreateOptions is not null)
        {
            OptionString.ParseInto(values, options.CreateOptions, descriptors);
        }

        values.Set("size", totalSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (options.BackingFile is not null)
        {
            if (OptionList.Find(descriptors, "backing_file") is null)
            {
                throw new OperationException($"Backing file not supported for file format '{formatName}'");
            }

            values.Set("backing_file", options.BackingFile);
        }

        if (options.BackingFormat is not null)
        {
            if (OptionList.Find(descriptors, "backing_fmt") is null)
            {
                throw new OperationException($"Backing file format not supported for file format '{formatName}'");
            }

            values.Set("backing_fmt", options.BackingFormat);
        }

        return (format, values);
    }

    private static void CheckCompression(FormatDriver? format, OptionValues? values)
    {
        if (format is not null && !format.SupportsCompressedWrites)
        {
            throw new OperationException("Compression not supported for this file format");
        }

        if (values is null)
        {
            return;
        }

        if ((values.TryGet("encryption", out string encryption) && OptionValues.ParseBool("encryption", encryption)) || values.Contains("encrypt.format"))
        {
            throw new OperationException("Compression and encryption not supported at the same time");
        }

        if (values.GetString("preallocation") is string preallocation && preallocation != "off")
        {
            throw new OperationException("Compression and preallocation not supported at the same time");
        }
    }

    private static async ValueTask CreateTargetAsync(ConvertImageOptions options, FormatDriver format, OptionValues values, long size, CancellationToken cancellationToken)
    {
        ProtocolDriver protocol = ImageCreator.FindProtocol(options.Registry, options.Target);
        var request = new ImageCreateRequest(options.Target, size, values, protocol, options.Registry, options.Policy)
        {
            Warning = options.Warning,
        };
        try
        {
            await format.CreateAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OptionException or NotSupportedException or UnauthorizedAccessException or InvalidDataException or OperationException)
        {
            throw new OperationException($"{options.Target}: error while converting {format.Name}: {ErrorText.Describe(e)}", e);
        }
    }

    private static async ValueTask<FormatNode> OpenTargetAsync(ConvertImageOptions options, CacheMode cache, CancellationToken cancellationToken)
    {
        var open = new ImageOpenOptions
        {
            Format = options.TargetFormat,
            ReadOnly = false,
            Cache = cache,
            // O_DIRECT may need the image extended to the physical sector size.
            Resize = cache.Direct,
            Policy = options.Policy,
            Registry = options.Registry,
            Warning = options.Warning,
            Message = options.Message,
        };
        try
        {
            return options.OpenTarget is not null
                ? await options.OpenTarget(options.Target, open, cancellationToken).ConfigureAwait(false)
                : await DiskImage.OpenAsync(options.Target, open, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            throw new OperationException($"Could not open '{options.Target}': {ErrorText.Describe(e)}", e);
        }
    }
}
