using System.Buffers.Binary;
using Qimg.Block;
using Qimg.Options;
using Qimg.Protocols;

namespace Qimg.Formats.Qcow2;

/// <summary>The qcow2 format (QEMU copy-on-write, version 2 and 3): probing, opening and creation.</summary>
public sealed class Qcow2Driver : FormatDriver, IImageSizeMeasurer
{
    public static Qcow2Driver Instance { get; } = new();

    private Qcow2Driver()
    {
    }

    public override string Name => "qcow2";

    public override bool SupportsBacking => true;

    public override bool SupportsCreate => true;

    public override bool SupportsCompressedWrites => true;

    public override IReadOnlyList<OptionDescriptor> CreateOptions => Qcow2CreateOptions.Descriptors;

    /// <inheritdoc/>
    public ValueTask<ImageMeasurement> MeasureAsync(OptionValues options, FormatNode? source, SecretStore? secrets, CancellationToken cancellationToken = default) =>
        Qcow2Measure.MeasureAsync(options, source, secrets, cancellationToken);

    /// <summary>QEMU's qcow2_probe: the magic and a version of at least 2, in a buffer holding a whole header.</summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= Qcow2Header.FixedPartSize
        && BinaryPrimitives.ReadUInt32BigEndian(header) == Qcow2Layout.Magic
        && BinaryPrimitives.ReadUInt32BigEndian(header[Qcow2Layout.VersionOffset..]) >= 2
            ? 100
            : 0;

    public override async ValueTask<FormatNode> OpenAsync(BlockNode file, ImageOpenContext context, CancellationToken cancellationToken = default)
    {
        // QEMU 7.2 opens the data file by its name as stored (relative to the working directory), and not at all when
        // only metadata is needed (info, BDRV_O_NO_IO).
        var parameters = new Qcow2OpenParameters(
            context.ReadOnly,
            context.Options.Warning,
            (name, ct) => context.OpenReferencedFileAsync(ImplicitOpenKind.DataFile, name, ct, relativeToImage: false),
            MetadataOnly: context.Options.NoIo,
            Check: context.Options.Check,
            CheckReport: context.Options.CheckReport)
        {
            Message = context.Options.Message,
        };
        return await Qcow2Image.OpenAsync(file, parameters, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates a qcow2 image with QEMU's layout (qcow2_co_create): the files are created, the options checked (a failure
    /// deletes the files again, as QEMU does), a minimal header with a one-cluster refcount table and one refcount block
    /// is written, and the image is then opened to count those clusters, write the full header, grow to the requested
    /// size (with preallocation) and record the backing file.
    /// </summary>
    /// <exception cref="OptionException">An option or option combination is invalid (QEMU's messages).</exception>
    /// <exception cref="IOException">Writing failed; HResult 27 (EFBIG) when the size is too large for the cluster size.</exception>
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken = default)
    {
        // The protocol sees only the options that are not qcow2's (QEMU deletes the format's own options first).
        var protocolOptions = new OptionValues();
        foreach (string key in request.Options.Keys)
        {
            if (!Qcow2CreateOptions.Descriptors.Any(d => d.Name == key) && request.Options.TryGet(key, out string value))
            {
                protocolOptions.Set(key, value);
            }
        }

        // What the protocol created, and only that, is removed again when a later step fails (QEMU removes whatever
        // regular file the name points at by then; a device node is never removed, by either).
        CreatedFile? created = await request.Protocol.CreateTrackedAsync(request.FileName, 0, protocolOptions, request.Warning, cancellationToken).ConfigureAwait(false);
        string? dataFileName = request.Options.GetString("data_file");
        CreatedFile? createdData = null;
        bool success = false;
        try
        {
            ProtocolDriver? dataProtocol = null;
            if (dataFileName is not null)
            {
                request.Policy.Authorize(new ImplicitOpenRequest(ImplicitOpenKind.DataFile, request.FileName, dataFileName, null));
                dataProtocol = request.Registry.GetProtocol(dataFileName);
                createdData = await dataProtocol.CreateTrackedAsync(dataFileName, 0, protocolOptions, request.Warning, cancellationToken).ConfigureAwait(false);
            }

            Qcow2CreateOptions options = Qcow2CreateOptions.Bind(request.Options, request.Size);
            await Qcow2Creator.CreateAsync(request, options, dataProtocol, cancellationToken).ConfigureAwait(false);
            success = true;
        }
        finally
        {
            if (!success)
            {
                created?.DeleteQuietly();
                createdData?.DeleteQuietly();
            }

            created?.Dispose();
            createdData?.Dispose();
        }
    }
}
