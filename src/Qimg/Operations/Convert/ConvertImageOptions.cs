using Qimg.Block;
using Qimg.Copy;
using Qimg.Formats;

namespace Qimg.Operations.Convert;

/// <summary>What to convert, and how (the arguments of <c>qemu-img convert</c>).</summary>
public sealed record ConvertImageOptions
{
    /// <summary>The source images, concatenated in this order.</summary>
    public required IReadOnlyList<string> Sources { get; init; }

    /// <summary>The sources' format (<c>-f</c>); null probes each.</summary>
    public string? SourceFormat { get; init; }

    /// <summary>Opens the sources (for <c>--image-opts</c>); null opens them by file name with <see cref="SourceFormat"/>.</summary>
    public Func<string, ImageOpenOptions, CancellationToken, ValueTask<FormatNode>>? OpenSource { get; init; }

    /// <summary>The target image.</summary>
    public required string Target { get; init; }

    /// <summary>The target format (<c>-O</c>); raw by default. Null only with <see cref="OpenTarget"/> and <see cref="SkipCreate"/>.</summary>
    public string? TargetFormat { get; init; } = "raw";

    /// <summary>Opens an existing target (for <c>--target-image-opts</c> with <c>-n</c>); null opens it by name.</summary>
    public Func<string, ImageOpenOptions, CancellationToken, ValueTask<FormatNode>>? OpenTarget { get; init; }

    /// <summary>The target's create options (<c>-o</c>, accumulated), or null.</summary>
    public string? CreateOptions { get; init; }

    /// <summary>A backing file for the target (<c>-B</c>): only what differs from it is written.</summary>
    public string? BackingFile { get; init; }

    /// <summary>The backing file's format (<c>-F</c>).</summary>
    public string? BackingFormat { get; init; }

    /// <summary>Write into an existing target instead of creating it (<c>-n</c>).</summary>
    public bool SkipCreate { get; init; }

    /// <summary>The existing target already reads as zeroes (<c>--target-is-zero</c>, needs <see cref="SkipCreate"/>).</summary>
    public bool TargetIsZero { get; init; }

    /// <summary>
    /// The target's cache mode name (<c>-t</c>); qemu-img converts with "unsafe" (no flushes) by default. Like qemu-img,
    /// an invalid name is only reported after the target was created.
    /// </summary>
    public string TargetCacheMode { get; init; } = "unsafe";

    /// <summary>The sources' cache mode (<c>-T</c>).</summary>
    public CacheMode SourceCache { get; init; } = CacheMode.Writeback;

    /// <summary>Read sources that other processes hold open for writing (<c>-U</c>).</summary>
    public bool ForceShare { get; init; }

    /// <summary>Internal snapshot to read from the (single) source (<c>-l</c>).</summary>
    public SnapshotSelector? Snapshot { get; init; }

    /// <summary>Copy persistent bitmaps (<c>--bitmaps</c>).</summary>
    public bool Bitmaps { get; init; }

    /// <summary>Skip inconsistent bitmaps instead of failing (<c>--skip-broken-bitmaps</c>).</summary>
    public bool SkipBrokenBitmaps { get; init; }

    /// <summary>The copy knobs (-S, -c, -m, -W, --salvage, -C, -r, progress).</summary>
    public CopyOptions Copy { get; init; } = new();

    public FormatRegistry Registry { get; init; } = FormatRegistry.Default;

    public ImplicitOpenPolicy Policy { get; init; } = ImplicitOpenPolicy.Permissive;

    /// <summary>Receives warnings in qemu-img's words (probing, salvaged errors).</summary>
    public Action<string>? Warning { get; init; }

    /// <summary>Receives lines QEMU prints verbatim (see <see cref="ImageOpenOptions.Message"/>).</summary>
    public Action<string>? Message { get; init; }
}

/// <summary>Which internal snapshot to read (<c>-l snapshot.id=…,snapshot.name=…</c> or <c>-l ID_OR_NAME</c>).</summary>
/// <param name="Id">The snapshot ID, or null.</param>
/// <param name="Name">The snapshot name, or null.</param>
/// <param name="IdOrName">True for the short form: the one string is tried as an ID, then as a name.</param>
public sealed record SnapshotSelector(string? Id, string? Name, bool IdOrName = false);
