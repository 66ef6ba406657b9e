using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Options;
using Qimg.Protocols;

namespace Qimg.Operations.Create;

/// <summary>
/// Image creation as <c>qemu-img create</c> does it (QEMU's <c>bdrv_img_create</c>): finds the format and protocol,
/// parses <c>-o</c> against their merged option lists, fills in size, backing file and backing format, opens the
/// backing file to check it and to take its size, then has the format driver create the image.
/// </summary>
public static class ImageCreator
{
    /// <summary>Validates everything and returns the creation, ready to run; nothing is written yet.</summary>
    /// <exception cref="OperationException">A user error, in qemu-img's words (and hint).</exception>
    /// <exception cref="OptionException">An invalid <c>-o</c> option.</exception>
    public static async ValueTask<ImageCreation> PrepareAsync(CreateImageOptions options, CancellationToken cancellationToken = default)
    {
        FormatRegistry registry = options.Registry;
        FormatDriver format = registry.FindFormat(options.Format)
            ?? throw new OperationException($"Unknown file format '{options.Format}'");
        ProtocolDriver protocol = FindProtocol(registry, options.FileName);
        EnsureCanCreate(format);

        IReadOnlyList<OptionDescriptor> descriptors = OptionList.Merge(format.CreateOptions, protocol.CreateOptions);
        var values = new OptionValues();
        if (options.Options is not null)
        {
            OptionString.ParseInto(values, options.Options, descriptors);
        }

        if (!values.Contains("size"))
        {
            // -1 (no size yet) is kept as QEMU keeps it: as the number 2^64 - 1.
            values.Set("size", (options.Size ?? ulong.MaxValue).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        else if (options.Size is not null)
        {
            throw new OperationException("The image size must be specified only once");
        }

        if (options.BackingFile is not null)
        {
            SetOrThrow(values, "backing_file", options.BackingFile, descriptors, $"Backing file not supported for file format '{options.Format}'");
        }

        if (options.BackingFormat is not null)
        {
            SetOrThrow(values, "backing_fmt", options.BackingFormat, descriptors, $"Backing file format not supported for file format '{options.Format}'");
        }

        string? backingFile = values.GetString("backing_file");
        if (backingFile is not null)
        {
            if (backingFile == options.FileName)
            {
                throw new OperationException("Error: Trying to create an image with the same filename as the backing file");
            }

            if (backingFile.Length == 0)
            {
                throw new OperationException("Expected backing file name, got empty string");
            }
        }

        string? backingFormat = values.GetString("backing_fmt");
        ulong size = values.GetSize("size", options.Size ?? ulong.MaxValue);
        if (backingFile is not null && !options.SkipBackingOpen)
        {
            size = await CheckBackingFileAsync(options, backingFile, backingFormat, size, values, cancellationToken).ConfigureAwait(false);
        }
        else if (backingFile is not null && backingFormat is null)
        {
            throw new OperationException("Backing file specified without backing format");
        }

        if (size == ulong.MaxValue)
        {
            throw new OperationException("Image creation needs a size parameter");
        }

        return new ImageCreation(options, format, protocol, descriptors, values, unchecked((long)size));
    }

    /// <summary>Prepares and creates in one step (without the "Formatting" line, which is the caller's to print).</summary>
    public static async ValueTask CreateAsync(CreateImageOptions options, CancellationToken cancellationToken = default)
    {
        ImageCreation creation = await PrepareAsync(options, cancellationToken).ConfigureAwait(false);
        await creation.CreateAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The text of <c>-o help</c>: the format's options (with a note about protocol options), or, when
    /// <paramref name="fileName"/> is given, the format's and its protocol's options together.
    /// </summary>
    /// <exception cref="OperationException">Unknown format or protocol, or no creation support (qemu-img's words).</exception>
    public static string GetOptionHelp(string formatName, string? fileName, FormatRegistry? registry = null)
    {
        registry ??= FormatRegistry.Default;
        FormatDriver format = registry.FindFormat(formatName)
            ?? throw new OperationException($"Unknown file format '{formatName}'");
        EnsureCanCreate(format);

        if (fileName is null)
        {
            return $"Supported {formatName} options:\n" + OptionList.FormatHelp(format.CreateOptions) +
                "\nThe protocol level may support further options.\nSpecify the target filename to include those options.\n";
        }

        ProtocolDriver protocol = FindProtocol(registry, fileName);
        return "Supported options:\n" + OptionList.FormatHelp(OptionList.Merge(format.CreateOptions, protocol.CreateOptions));
    }

    /// <summary>
    /// Refuses a format that cannot create images: in QEMU's words when QEMU cannot either, and as not supported yet
    /// when only qimg cannot (a format it recognises but has no driver for), so nothing is written.
    /// </summary>
    /// <exception cref="OperationException">The format cannot create images; for a format qimg does not support yet,
    /// its inner exception is the <see cref="FormatNotSupportedException"/>.</exception>
    internal static void EnsureCanCreate(FormatDriver format)
    {
        if (format is ProbeOnlyFormatDriver { QemuSupportsCreate: true })
        {
            var notSupported = new FormatNotSupportedException(format.Name);
            throw new OperationException(notSupported.Message, notSupported);
        }

        if (!format.SupportsCreate)
        {
            throw new OperationException($"Format driver '{format.Name}' does not support image creation");
        }
    }

    /// <summary>The protocol for <paramref name="fileName"/> (QEMU's <c>bdrv_find_protocol</c> with prefixes allowed).</summary>
    /// <exception cref="OperationException">"Unknown protocol 'x'" for a prefix no protocol handles.</exception>
    public static ProtocolDriver FindProtocol(FormatRegistry registry, string fileName)
    {
        if (ImagePaths.ProtocolOf(fileName) is string prefix)
        {
            return registry.FindProtocol(prefix) ?? throw new OperationException($"Unknown protocol '{prefix}'");
        }

        return registry.GetProtocol(fileName);
    }

    private static void SetOrThrow(OptionValues values, string name, string value, IReadOnlyList<OptionDescriptor> descriptors, string error)
    {
        if (OptionList.Find(descriptors, name) is null)
        {
            throw new OperationException(error);
        }

        OptionString.Set(values, name, value, descriptors);
    }

    /// <summary>
    /// Opens the backing file (with its chain, read-only, metadata only, sharing it with other users) as QEMU does to
    /// validate it, insists on a backing format, and returns the size to use (the backing file's when none was given).
    /// </summary>
    private static async ValueTask<ulong> CheckBackingFileAsync(CreateImageOptions options, string backingFile, string? backingFormat, ulong size, OptionValues values, CancellationToken cancellationToken)
    {
        string fullBacking = ImagePaths.FullBackingFileName(options.FileName, backingFile)
            ?? throw new OperationException($"Cannot use relative backing file names for '{options.FileName}'");
        var openOptions = new ImageOpenOptions
        {
            Format = backingFormat,
            ReadOnly = true,
            ForceShare = true,
            NoIo = true,
            Registry = options.Registry,
            Policy = options.Policy,
            Warning = options.Warning,
        };
        FormatNode backing;
        try
        {
            backing = await DiskImage.OpenAsync(fullBacking, openOptions, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            // Format drivers word their own failures ("Image is not in qcow2 format"); only protocol failures name the file.
            string message = e is ImageOpenException ? e.Message : ErrorText.Describe(e);
            throw new OperationException(message, e, "Could not open backing image.\n");
        }

        await using (backing.ConfigureAwait(false))
        {
            if (backingFormat is null)
            {
                throw new OperationException("Backing file specified without backing format", $"Detected format of {backing.DriverName}.");
            }

            if (size == ulong.MaxValue)
            {
                size = (ulong)backing.Length;
                values.Set("size", size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return size;
    }
}
