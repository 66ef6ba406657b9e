using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Options;

namespace Qimg.Formats.Raw;

/// <summary>
/// The raw format: guest bytes are file bytes, optionally a window of the file (the <c>offset</c> and <c>size</c>
/// driver options). QEMU's block/raw-format.c.
/// </summary>
public sealed class RawDriver : FormatDriver, IImageSizeMeasurer
{
    /// <summary>How many bytes at the start of a probed raw image are protected from becoming another format's header.</summary>
    internal const int ProbeSize = 512;

    public static RawDriver Instance { get; } = new();

    private RawDriver()
    {
    }

    public override string Name => "raw";

    public override bool SupportsCreate => true;

    /// <summary>raw's own create options; the file protocol adds its own (preallocation, nocow, extent_size_hint).</summary>
    public override IReadOnlyList<OptionDescriptor> CreateOptions { get; } =
    [
        new("size", OptionType.Size, "Virtual disk size"),
    ];

    /// <summary>The open options raw accepts (<c>--image-opts driver=raw,offset=…,size=…</c>).</summary>
    public IReadOnlyList<OptionDescriptor> RuntimeOptions { get; } =
    [
        new("offset", OptionType.Size, "offset in the disk where the image starts"),
        new("size", OptionType.Size, "virtual disk size"),
    ];

    /// <summary>
    /// QEMU's raw_measure: the source's size, or the "size" option rounded up to a sector; unallocated sectors count
    /// towards the file size in raw images, so required and fully allocated are the same.
    /// </summary>
    public ValueTask<ImageMeasurement> MeasureAsync(OptionValues options, FormatNode? source, SecretStore? secrets, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        // A size near 2^64 wraps when rounded, as QEMU's ROUND_UP does.
        ulong required = source is not null ? (ulong)source.Length : unchecked((options.GetSize("size", 0) + 511) / 512 * 512);
        return ValueTask.FromResult(new ImageMeasurement(required, required));
    }

    /// <summary>Raw matches anything, with the lowest score, so that any real format wins.</summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) => 1;

    /// <summary>
    /// Without offset or size raw is a filter and passes its users' permissions to the file unchanged, so a raw image
    /// opened read-only locks only "consistent read" (and nothing at all for <c>info</c>). With offset or size the
    /// file holds raw's data (QEMU's BDRV_CHILD_DATA), and nobody else may resize it; raw itself never adds write or
    /// resize beyond what its users asked for (QEMU's <c>raw_child_perm</c>).
    /// </summary>
    public override PermissionPair GetFilePermissions(PermissionPair parent, bool writable, bool noIo, OptionValues? driverOptions)
    {
        if (driverOptions is null || !(driverOptions.Contains("offset") || driverOptions.Contains("size")))
        {
            return parent.ForFilteredChild();
        }

        PermissionPair storage = parent.ForStorageChild(ChildRole.Data, writable, noIo);
        const BlockPermissions WriteOrResize = BlockPermissions.Write | BlockPermissions.Resize;
        return storage with { Perm = (storage.Perm & ~WriteOrResize) | (parent.Perm & WriteOrResize) };
    }

    /// <summary>
    /// Opens a raw image. When the format was probed and the image is writable, QEMU's warning is sent to
    /// <see cref="ImageOpenContext.Warn"/> as its full three-line text (QEMU prints it as is, without a program-name
    /// prefix), and writes that would make the first sector probe as another format are refused.
    /// </summary>
    /// <exception cref="ImageOpenException">The offset or size option does not fit the file (QEMU's wording).</exception>
    /// <exception cref="OptionException">The offset or size option is not a size.</exception>
    public override ValueTask<FormatNode> OpenAsync(BlockNode file, ImageOpenContext context, CancellationToken cancellationToken = default)
    {
        OptionValues? options = context.Options.DriverOptions;
        ulong offset = options?.GetSize("offset", 0) ?? 0;
        bool hasSize = options?.Contains("size") ?? false;
        ulong size = hasSize ? options!.GetSize("size", 0) : 0;

        if (context.Probed && !context.ReadOnly)
        {
            context.Warn(
                $"WARNING: Image format was not specified for '{file.FileName}' and probing guessed raw.\n" +
                "         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n" +
                "         Specify the 'raw' format explicitly to remove the restrictions.");
        }

        long realSize = file.Length;
        if (offset > (ulong)realSize)
        {
            throw new ImageOpenException($"Offset ({offset}) cannot be greater than size of the containing file ({realSize})");
        }

        if (hasSize && (ulong)realSize - offset < size)
        {
            // QEMU's message, including its doubled space.
            throw new ImageOpenException(
                $"The sum of offset ({offset}) and size ({size}) has to be smaller or equal to the  actual size of the containing file ({realSize})");
        }

        if (hasSize && size % 512 != 0)
        {
            throw new ImageOpenException("Specified size is not multiple of 512");
        }

        FormatRegistry? probeRegistry = context.Probed ? context.Options.Registry : null;
        return ValueTask.FromResult<FormatNode>(new RawImage(file, context.ReadOnly, probeRegistry, (long)offset, hasSize ? (long)size : null));
    }

    /// <summary>Creates the file through the protocol (raw has no metadata of its own).</summary>
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken = default) =>
        request.Protocol.CreateAsync(request.FileName, request.Size, request.Options, request.Warning, cancellationToken);
}
