using Qimg.Formats;

namespace Qimg.Operations.Info;

/// <summary>
/// What <c>qemu-img info</c> reports about one image (QEMU's QAPI <c>ImageInfo</c>, "flat": without its backing
/// image). Optional members are null when QEMU leaves them out.
/// </summary>
public sealed record ImageInfo
{
    /// <summary>The image's file name as QEMU shows it.</summary>
    public required string FileName { get; init; }

    /// <summary>The format driver name ("qcow2", "raw"…).</summary>
    public required string Format { get; init; }

    /// <summary>The image was not closed cleanly (null when the format cannot say).</summary>
    public bool? DirtyFlag { get; init; }

    /// <summary>Bytes allocated on the host ("disk size"); null when unknown.</summary>
    public long? ActualSize { get; init; }

    /// <summary>The virtual disk size in bytes.</summary>
    public required long VirtualSize { get; init; }

    /// <summary>The cluster size, for formats that have clusters.</summary>
    public long? ClusterSize { get; init; }

    /// <summary>True when the guest data is encrypted; null otherwise (QEMU only reports true).</summary>
    public bool? Encrypted { get; init; }

    /// <summary>The backing file name as stored in the image.</summary>
    public string? BackingFileName { get; init; }

    /// <summary>The backing file name as qimg would open it (relative names resolved against the image).</summary>
    public string? FullBackingFileName { get; init; }

    /// <summary>The backing file format stored in the image.</summary>
    public string? BackingFileFormat { get; init; }

    /// <summary>The internal snapshots; null when there are none.</summary>
    public IReadOnlyList<SnapshotInfo>? Snapshots { get; init; }

    /// <summary>The format-specific information, for formats that have some.</summary>
    public FormatSpecificInfo? FormatSpecific { get; init; }
}
