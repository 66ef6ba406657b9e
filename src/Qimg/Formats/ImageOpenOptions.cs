using Qimg.Block;
using Qimg.Options;

namespace Qimg.Formats;

/// <summary>How <see cref="DiskImage.OpenAsync"/> opens an image and its backing chain.</summary>
public sealed record ImageOpenOptions
{
    /// <summary>The format name (<c>-f</c>); null probes the file, as qemu-img does.</summary>
    public string? Format { get; init; }

    /// <summary>Open read-only (the default). Backing files are always opened read-only.</summary>
    public bool ReadOnly { get; init; } = true;

    /// <summary>Cache mode for the image (and its backing files).</summary>
    public CacheMode Cache { get; init; } = CacheMode.Writeback;

    /// <summary>Open even when another process holds conflicting image locks (<c>-U</c>); read-only only.</summary>
    public bool ForceShare { get; init; }

    /// <summary>Do not open the backing file (QEMU's <c>BDRV_O_NO_BACKING</c>); unallocated ranges then read as zero.</summary>
    public bool NoBacking { get; init; }

    /// <summary>Take QEMU's image locks (on by default, like QEMU's locking=auto on Linux).</summary>
    public bool Locking { get; init; } = true;

    /// <summary>
    /// QEMU's BDRV_O_NO_IO: the image is opened to read its metadata only (<c>info</c>), so no consistent read is
    /// requested and a raw image takes no lock at all.
    /// </summary>
    public bool NoIo { get; init; }

    /// <summary>QEMU's BDRV_O_RESIZE: the image will be resized (<c>resize</c>), which takes the "resize" permission.</summary>
    public bool Resize { get; init; }

    /// <summary>
    /// QEMU's BDRV_O_NO_SHARE: while open, others may only read (<c>convert</c> opens its sources so), so a writer
    /// elsewhere makes the open fail.
    /// </summary>
    public bool NoShare { get; init; }

    /// <summary>The permissions the image's user takes and shares (QEMU's <c>blk_new_open</c> from the flags above).</summary>
    public PermissionPair Permissions => PermissionPair.ForOpen(!ReadOnly, NoIo, Resize, NoShare);

    /// <summary>
    /// QEMU's BDRV_O_CHECK: the image is opened to be checked or repaired (<c>qemu-img check</c>). Formats then accept
    /// metadata they would otherwise refuse (a qcow2 image marked corrupt may be opened for writing, its snapshot table is
    /// left to the check) and do not repair a dirty image on open.
    /// </summary>
    public bool Check { get; init; }

    /// <summary>
    /// Receives the report of the check a format runs while opening (qcow2 repairs an image left dirty when it is opened
    /// for writing; QEMU prints that report on stderr); null drops it.
    /// </summary>
    public Action<CheckMessage>? CheckReport { get; init; }

    /// <summary>The gate for files named inside image headers (backing files, data files).</summary>
    public ImplicitOpenPolicy Policy { get; init; } = ImplicitOpenPolicy.Permissive;

    /// <summary>The formats and protocols to use.</summary>
    public FormatRegistry Registry { get; init; } = FormatRegistry.Default;

    /// <summary>Driver options (from <c>--image-opts</c> or a <c>json:</c> file name) beyond driver and file name.</summary>
    public OptionValues? DriverOptions { get; init; }

    /// <summary>
    /// Receives warnings in qemu-img's words (the CLI prints them on stderr); null drops them. Most are QEMU
    /// <c>warn_report</c> texts, which qemu-img prints as "qemu-img: warning: TEXT". A text starting with "WARNING: "
    /// (raw's probing warning, several lines) or "qcow2: " (qcow2's corruption events) is one QEMU prints verbatim with
    /// fprintf: print it as is, plus a newline (<see cref="IsVerbatimWarning"/>).
    /// </summary>
    public Action<string>? Warning { get; init; }

    /// <summary>True for warnings QEMU prints verbatim (fprintf) rather than as "program: warning: TEXT".</summary>
    public static bool IsVerbatimWarning(string message) =>
        message.StartsWith("WARNING: ", StringComparison.Ordinal) || message.StartsWith("qcow2: ", StringComparison.Ordinal);

    /// <summary>
    /// Receives lines QEMU prints on stderr as they are, without "warning:" (for example qcow2's "qcow2: Marking image as
    /// corrupt: …" reports); null sends them to <see cref="Warning"/> instead.
    /// </summary>
    public Action<string>? Message { get; init; }
}

/// <summary>
/// What a format driver gets while opening: the caller's options, whether the format was probed, and the way to open
/// files the image names (through the <see cref="ImplicitOpenPolicy"/>).
/// </summary>
public sealed class ImageOpenContext
{
    internal ImageOpenContext(ImageOpenOptions options, string fileName, bool probed)
        : this(options, fileName, probed, options.Permissions)
    {
    }

    internal ImageOpenContext(ImageOpenOptions options, string fileName, bool probed, PermissionPair permissions)
    {
        Options = options;
        FileName = fileName;
        Probed = probed;
        Permissions = permissions;
    }

    /// <summary>What the users of the image being opened need and share (files it opens get their share of it).</summary>
    public PermissionPair Permissions { get; }

    public ImageOpenOptions Options { get; }

    /// <summary>The name the image was opened by.</summary>
    public string FileName { get; }

    /// <summary>True when the format was guessed by probing rather than given.</summary>
    public bool Probed { get; }

    public bool ReadOnly => Options.ReadOnly;

    public void Warn(string message) => Options.Warning?.Invoke(message);

    /// <summary>
    /// Opens a file named inside this image (an external data file) as a protocol node with the image's access mode,
    /// after the policy allowed it, confined to the directory the policy names (if any). Relative names are resolved against the image's directory, or, with
    /// <paramref name="relativeToImage"/> false, used as they are (relative to the working directory, as QEMU 7.2 opens
    /// qcow2 data files).
    /// </summary>
    public async ValueTask<BlockNode> OpenReferencedFileAsync(ImplicitOpenKind kind, string name, CancellationToken cancellationToken = default, bool relativeToImage = true)
    {
        string resolved = relativeToImage ? DiskImage.ResolveRelativeTo(FileName, name) : name;
        var request = new ImplicitOpenRequest(kind, FileName, resolved, null);
        Options.Policy.Authorize(request);

        // A plain file name (no json: or protocol parsing, as the CVE-2024-4467 fix has QEMU open data files).
        Protocols.ProtocolDriver protocol = Options.Registry.GetProtocol(resolved);
        var protocolOptions = new Protocols.ProtocolOpenOptions(Options.ReadOnly, Options.Cache, Options.ForceShare, Options.Locking);
        BlockNode node = await DiskImage.OpenFileAsync(protocol, resolved, protocolOptions, (request, Options.Policy.ConfineTo(request)), cancellationToken).ConfigureAwait(false);
        try
        {
            // A data file holds guest data only (QEMU's BDRV_CHILD_DATA role).
            node.SetPermissions(Permissions.ForStorageChild(ChildRole.Data, !Options.ReadOnly, Options.NoIo));
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return node;
    }
}

/// <summary>Everything a format driver needs to create an image.</summary>
/// <param name="FileName">The image file to create.</param>
/// <param name="Size">The virtual size in bytes.</param>
/// <param name="Options">The <c>-o</c> options (already validated against the format's and protocol's descriptors).</param>
/// <param name="Protocol">The protocol that creates and opens the files.</param>
/// <param name="Registry">The registry (for opening a backing file to check it, for example).</param>
/// <param name="Policy">The gate for files the new image names.</param>
public sealed record ImageCreateRequest(
    string FileName,
    long Size,
    OptionValues Options,
    Protocols.ProtocolDriver Protocol,
    FormatRegistry Registry,
    ImplicitOpenPolicy Policy)
{
    /// <summary>Receives warnings in qemu-img's words; null drops them.</summary>
    public Action<string>? Warning { get; init; }
}
