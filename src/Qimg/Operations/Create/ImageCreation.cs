using Qimg.Formats;
using Qimg.Options;
using Qimg.Protocols;

namespace Qimg.Operations.Create;

/// <summary>
/// A validated image creation, ready to run (the state of QEMU's <c>bdrv_img_create</c> just before it prints
/// "Formatting …" and calls the driver): the format, the protocol, the merged option list and the final values.
/// </summary>
public sealed class ImageCreation
{
    private readonly CreateImageOptions _options;

    internal ImageCreation(CreateImageOptions options, FormatDriver format, ProtocolDriver protocol, IReadOnlyList<OptionDescriptor> descriptors, OptionValues values, long size)
    {
        _options = options;
        Format = format;
        Protocol = protocol;
        Descriptors = descriptors;
        Values = values;
        Size = size;
    }

    public string FileName => _options.FileName;

    public FormatDriver Format { get; }

    public ProtocolDriver Protocol { get; }

    /// <summary>The format's create options followed by the protocol's (each name once).</summary>
    public IReadOnlyList<OptionDescriptor> Descriptors { get; }

    /// <summary>The option values: what <c>-o</c> gave, plus size, backing_file and backing_fmt.</summary>
    public OptionValues Values { get; }

    /// <summary>
    /// The virtual size. Negative when a size of 2^63 or more was given through <c>-o size=</c>; QEMU passes that on
    /// and lets the driver refuse it, and so does qimg.
    /// </summary>
    public long Size { get; }

    /// <summary>The options as qemu-img's "Formatting" line shows them ("cluster_size=65536 … size=1048576 …").</summary>
    public string OptionSummary => OptionList.FormatSummary(Descriptors, Values);

    /// <summary>qemu-img's line "Formatting 'NAME', fmt=FMT OPTIONS" (without the newline).</summary>
    public string FormattingLine => $"Formatting '{FileName}', fmt={Format.Name} {OptionSummary}";

    /// <summary>Creates the image through the format driver.</summary>
    /// <exception cref="OperationException">The image is too large for the format (qemu-img's wording and hint).</exception>
    /// <exception cref="OptionException">The driver refused an option value.</exception>
    public async ValueTask CreateAsync(CancellationToken cancellationToken = default)
    {
        var request = new ImageCreateRequest(FileName, Size, Values, Protocol, _options.Registry, _options.Policy)
        {
            Warning = _options.Warning,
        };
        try
        {
            await Format.CreateAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (e.HResult == Efbig)
        {
            // qemu-img's message is more helpful than the driver's "File too large".
            // Like qemu_opt_get_size, the option's default counts when it was not given.
            string? clusterSize = Values.GetString("cluster_size") ?? OptionList.Find(Descriptors, "cluster_size")?.DefaultValue;
            string hint = clusterSize is not null && OptionValues.ParseSize("cluster_size", clusterSize) != 0 ? " (try using a larger cluster size)" : string.Empty;
            throw new OperationException($"The image size is too large for file format '{Format.Name}'{hint}", e);
        }
    }

    private const int Efbig = 27;
}
