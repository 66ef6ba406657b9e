using Qimg.Block;
using Qimg.Options;

namespace Qimg.Formats;

/// <summary>
/// A disk image format: a stateless descriptor (QEMU's <c>BlockDriver</c> table) with probing, opening and creation.
/// Opening returns the stateful <see cref="FormatNode"/>. One singleton per format.
/// </summary>
public abstract class FormatDriver
{
    /// <summary>The exact QEMU driver name, as given to <c>-f</c> and shown by <c>info</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Whether images of this format can name a backing file.</summary>
    public virtual bool SupportsBacking => false;

    /// <summary>Whether <see cref="CreateAsync"/> is implemented.</summary>
    public virtual bool SupportsCreate => false;

    /// <summary>
    /// False for a format qimg only recognises (<see cref="ProbeOnlyFormatDriver"/>): it probes with QEMU's score, so
    /// its images are never read as raw, but <see cref="OpenAsync"/> and <see cref="CreateAsync"/> throw
    /// <see cref="Diagnostics.FormatNotSupportedException"/>. Such formats are not listed as supported.
    /// </summary>
    public virtual bool IsImplemented => true;

    /// <summary>Whether open images accept <see cref="WriteFlags.Compressed"/> writes (QEMU's <c>block_driver_can_compress</c>).</summary>
    public virtual bool SupportsCompressedWrites => false;

    /// <summary>The format's create options in QEMU's order (for <c>-o</c> parsing and <c>-o help</c>).</summary>
    public virtual IReadOnlyList<OptionDescriptor> CreateOptions => [];

    /// <summary>
    /// How sure this driver is that <paramref name="header"/> (the first 512 bytes of the file, zero-padded) is its format:
    /// 0 = not at all, 100 = certain by magic; raw answers 1. Pure: no I/O.
    /// </summary>
    public virtual int Probe(ReadOnlySpan<byte> header, string? fileName) => 0;

    /// <summary>
    /// Opens the image stored in <paramref name="file"/>, validating every header field before use. The returned node
    /// owns <paramref name="file"/>. Backing files are not opened here: the driver records
    /// <see cref="FormatNode.BackingFileName"/> and the opener attaches the backing node.
    /// </summary>
    /// <exception cref="InvalidDataException">The image is malformed or corrupt (message in qemu-img's words).</exception>
    /// <exception cref="NotSupportedException">The image uses a feature qimg does not support.</exception>
    public abstract ValueTask<FormatNode> OpenAsync(BlockNode file, ImageOpenContext context, CancellationToken cancellationToken = default);

    /// <summary>
    /// What an image of this format asks of its primary file when the image's users hold <paramref name="parent"/>
    /// (QEMU's <c>bdrv_child_perm</c> for the "file" child). The default is a format that keeps data and metadata in
    /// the file: it writes and resizes the file whenever the image is writable, and lets nobody else write or resize it.
    /// </summary>
    /// <param name="parent">What the image's users need and share.</param>
    /// <param name="writable">The image is open for writing.</param>
    /// <param name="noIo">The image is opened to read metadata only (QEMU's BDRV_O_NO_IO, as <c>info</c> does).</param>
    /// <param name="driverOptions">The image's driver options (raw's offset and size change its answer), or null.</param>
    public virtual PermissionPair GetFilePermissions(PermissionPair parent, bool writable, bool noIo, OptionValues? driverOptions) =>
        parent.ForStorageChild(ChildRole.Data | ChildRole.Metadata, writable, noIo);

    /// <summary>Creates a new image as described by <paramref name="request"/>.</summary>
    /// <exception cref="OptionException">An option value is invalid (message in qemu-img's words).</exception>
    public virtual ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"Format driver '{Name}' does not support image creation");

    public override string ToString() => Name;
}
