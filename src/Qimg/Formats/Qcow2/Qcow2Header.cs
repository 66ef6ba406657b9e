namespace Qimg.Formats.Qcow2;

/// <summary>One entry of the feature name table header extension.</summary>
/// <param name="Type">0 incompatible, 1 compatible, 2 autoclear.</param>
/// <param name="Bit">Bit number within the selected bitmap (0-63).</param>
/// <param name="Name">The feature's name (at most 46 bytes).</param>
internal readonly record struct Qcow2Feature(byte Type, byte Bit, string Name);

/// <summary>A header extension qimg does not know, kept so that rewriting the header preserves it.</summary>
internal sealed record Qcow2UnknownExtension(uint Magic, byte[] Data);

/// <summary>
/// The qcow2 header: the fixed fields, the header extensions and the backing file name, all of which live in the first
/// cluster of the image. Parsing (<c>Qcow2Header.Read.cs</c>) validates every field before it is used; writing
/// (<c>Qcow2Header.Write.cs</c>) lays the cluster out exactly as QEMU's <c>qcow2_update_header</c> does.
/// </summary>
/// <remarks>Not thread-safe; the image mutates it under its metadata lock.</remarks>
internal sealed partial class Qcow2Header
{
    /// <summary>2 or 3.</summary>
    public int Version { get; set; }

    public ulong BackingFileOffset { get; set; }

    public uint BackingFileSize { get; set; }

    /// <summary>Validated: 9 to 21.</summary>
    public int ClusterBits { get; set; }

    public int ClusterSize => 1 << ClusterBits;

    /// <summary>Virtual disk size in bytes.</summary>
    public ulong Size { get; set; }

    public uint CryptMethod { get; set; }

    public uint L1Size { get; set; }

    public ulong L1TableOffset { get; set; }

    public ulong RefcountTableOffset { get; set; }

    public uint RefcountTableClusters { get; set; }

    public uint SnapshotCount { get; set; }

    public ulong SnapshotsOffset { get; set; }

    public ulong IncompatibleFeatures { get; set; }

    public ulong CompatibleFeatures { get; set; }

    public ulong AutoclearFeatures { get; set; }

    /// <summary>log2 of refcount_bits; 4 for version 2.</summary>
    public int RefcountOrder { get; set; }

    /// <summary>header_length as read (72 for version 2).</summary>
    public uint HeaderLength { get; set; }

    public byte CompressionType { get; set; }

    /// <summary>Header bytes past the fields QEMU 7.2 knows (header_length beyond 112), preserved on rewrite.</summary>
    public byte[] UnknownHeaderFields { get; set; } = [];

    /// <summary>The backing format extension, or null.</summary>
    public string? BackingFormat { get; set; }

    /// <summary>The external data file name extension, or null.</summary>
    public string? DataFile { get; set; }

    /// <summary>The feature name table as read (empty when absent).</summary>
    public List<Qcow2Feature> FeatureTable { get; } = [];

    public bool HasBitmapsExtension { get; set; }

    /// <summary>
    /// A bitmaps extension was found without the "bitmaps" auto-clear bit, so it was ignored; QEMU drops it from the
    /// header when it opens the image for writing.
    /// </summary>
    public bool HasIgnoredBitmapsExtension { get; set; }

    public uint BitmapCount { get; set; }

    public ulong BitmapDirectorySize { get; set; }

    public ulong BitmapDirectoryOffset { get; set; }

    /// <summary>Offset of the full disk encryption header (0 when there is no such extension).</summary>
    public ulong CryptoHeaderOffset { get; set; }

    public ulong CryptoHeaderLength { get; set; }

    /// <summary>Unknown extensions, in the order QEMU keeps them (last read first).</summary>
    public List<Qcow2UnknownExtension> UnknownExtensions { get; } = [];

    /// <summary>The backing file name, or null when the image has none.</summary>
    public string? BackingFile { get; set; }

    public int RefcountBits => 1 << RefcountOrder;

    public bool HasSubclusters => (IncompatibleFeatures & Qcow2Layout.IncompatExtendedL2) != 0;

    public bool HasExternalDataFile => (IncompatibleFeatures & Qcow2Layout.IncompatDataFile) != 0;

    public bool IsDataFileRaw => (AutoclearFeatures & Qcow2Layout.AutoclearDataFileRaw) != 0;

    public bool IsDirty => (IncompatibleFeatures & Qcow2Layout.IncompatDirty) != 0;

    public bool IsCorrupt => (IncompatibleFeatures & Qcow2Layout.IncompatCorrupt) != 0;

    public bool HasLazyRefcounts => (CompatibleFeatures & Qcow2Layout.CompatLazyRefcounts) != 0;

    /// <summary>Size of one L2 entry: 8 bytes, or 16 with extended L2 entries.</summary>
    public int L2EntrySize => HasSubclusters ? 16 : 8;
}
