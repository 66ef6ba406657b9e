using Qimg.Formats;
using Qimg.Operations.Convert;

namespace Qimg.Operations.Measure;

/// <summary>What <see cref="ImageMeasurer.MeasureAsync"/> measures: <c>qemu-img measure</c>'s options and operands.</summary>
public sealed record MeasureImageOptions
{
    /// <summary>The image whose copy is measured (opened read-only), or null to measure an empty image of <see cref="Size"/>.</summary>
    public ImageSource? Source { get; init; }

    /// <summary>The name qemu-img quotes when the source cannot be opened (the file name or the --image-opts string).</summary>
    public string? DisplayName { get; init; }

    /// <summary>The internal snapshot of the source to measure (<c>-l</c>), or null for the current state.</summary>
    public SnapshotSelector? Snapshot { get; init; }

    /// <summary>The virtual size of the empty image to measure (<c>--size</c>); it overrides a "size" in <see cref="Options"/>.</summary>
    public ulong? Size { get; init; }

    /// <summary>The target format (<c>-O</c>); raw by default, as in qemu-img.</summary>
    public string TargetFormat { get; init; } = "raw";

    /// <summary>The target's create options (<c>-o</c>), or null.</summary>
    public string? Options { get; init; }

    /// <summary>The secrets the options may name (<c>--object secret,…</c>), or null.</summary>
    public Options.SecretStore? Secrets { get; init; }

    /// <summary>Open options for the source (locking, <c>-U</c>, warnings); it is always opened read-only.</summary>
    public ImageOpenOptions OpenOptions { get; init; } = new();
}
