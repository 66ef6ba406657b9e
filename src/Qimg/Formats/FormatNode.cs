using Qimg.Block;

namespace Qimg.Formats;

/// <summary>
/// An open image of some format, stored in a protocol node (<see cref="File"/>) and possibly backed by another image.
/// Owns its file node and its backing node: disposing the image disposes them.
/// </summary>
public abstract class FormatNode : BlockNode
{
    private BlockNode? _backing;

    protected FormatNode(BlockNode file, bool readOnly)
        : base(file.FileName, readOnly)
    {
        File = file;
    }

    /// <summary>The protocol node the image is stored in.</summary>
    public override BlockNode File { get; }

    public override BlockNode? Backing => _backing;

    /// <summary>The backing file name exactly as stored in the image, or null.</summary>
    public string? BackingFileName { get; protected set; }

    /// <summary>The backing format as stored in the image, or null when the image does not say.</summary>
    public string? BackingFormat { get; protected set; }

    /// <summary>The cluster size for <c>info</c> ("cluster_size"), or 0 when the format has none.</summary>
    public virtual int ClusterSize => 0;

    /// <summary>QEMU's "dirty-flag": the image was not closed cleanly.</summary>
    public virtual bool IsDirty => false;

    /// <summary>True when guest data is encrypted.</summary>
    public virtual bool IsEncrypted => false;

    /// <summary>The internal snapshots, oldest first.</summary>
    public virtual IReadOnlyList<SnapshotInfo> Snapshots => [];

    /// <summary>The "format-specific" info (type and data), or null when the format has none.</summary>
    public virtual FormatSpecificInfo? GetFormatSpecificInfo() => null;

    /// <summary>
    /// Makes this read-only image show the internal snapshot with the given ID and/or name instead of the active
    /// state (QEMU's <c>bdrv_snapshot_load_tmp</c>, used by convert -l). With both given, both must match; with one,
    /// the ID is tried first, then the name.
    /// </summary>
    /// <exception cref="NotSupportedException">The format has no internal snapshots (qemu-img's wording).</exception>
    /// <exception cref="KeyNotFoundException">No such snapshot ("Can't find snapshot").</exception>
    public virtual ValueTask LoadSnapshotAsync(string? id, string? name, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"Block format '{DriverName}' used by device '' does not support temporarily loading internal snapshots");

    /// <summary>Whether the format can check (and repair) its metadata: QEMU's <c>bdrv_co_check</c>.</summary>
    public virtual bool SupportsCheck => false;

    /// <summary>
    /// Checks the image's metadata for consistency (QEMU's <c>bdrv_co_check</c>) and, with <paramref name="repair"/>,
    /// repairs what that mode allows; repairing needs an image opened for writing with <see cref="ImageOpenOptions.Check"/>.
    /// Each problem is described through <paramref name="report"/> as it is found, in QEMU's words.
    /// </summary>
    /// <returns>The counters of the check (after its repairs).</returns>
    /// <exception cref="NotSupportedException">The format has no check (qemu-img: "This image format does not support checks").</exception>
    /// <exception cref="IOException">The check could not complete; the message is the failure's strerror text.</exception>
    public virtual ValueTask<CheckResult> CheckAsync(RepairMode repair, Action<CheckMessage>? report, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("This image format does not support checks");

    /// <summary>True when every write must be compressed (QEMU's <c>needs_compressed_writes</c>, e.g. stream-optimized vmdk).</summary>
    public virtual bool NeedsCompressedWrites => false;

    /// <summary>
    /// Called once after a run of <see cref="WriteFlags.Compressed"/> writes (convert -c) so the format can finish its
    /// packed tail; QEMU signals this with a zero-length compressed write. The default does nothing.
    /// </summary>
    public virtual ValueTask CompleteCompressedWritesAsync(CancellationToken cancellationToken = default) => default;

    public override IReadOnlyList<BlockChild> Children
    {
        get
        {
            var children = new List<BlockChild> { new("file", File, ChildRole.Primary | ChildRole.Data | ChildRole.Metadata) };
            if (_backing is not null)
            {
                children.Add(new("backing", _backing, ChildRole.Cow));
            }

            return children;
        }
    }

    /// <summary>Attaches the opened backing node (done by the opener after the format opened).</summary>
    internal void AttachBacking(BlockNode? backing) => _backing = backing;

    /// <summary>Detaches the backing node without disposing it (for rebase and commit).</summary>
    internal BlockNode? DetachBacking()
    {
        BlockNode? backing = _backing;
        _backing = null;
        return backing;
    }

    protected override async ValueTask DisposeCoreAsync()
    {
        if (_backing is not null)
        {
            await _backing.DisposeAsync().ConfigureAwait(false);
        }

        await File.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>The "format-specific" member of <c>info</c>: a QAPI union, its type name and its data.</summary>
public sealed record FormatSpecificInfo(string Type, InfoObject Data);
