namespace Qimg.Formats.Qcow2;

/// <summary>
/// On-disk constants of qcow2 (docs/interop/qcow2.txt): header field offsets, magic numbers, feature bits, table entry
/// masks, and QEMU's implementation limits. Every literal offset of the format lives here.
/// </summary>
internal static class Qcow2Layout
{
    /// <summary>"QFI\xfb".</summary>
    public const uint Magic = 0x514649fb;

    // ------------------------------------------------------------ header fields (byte offsets, big endian)

    public const int MagicOffset = 0;
    public const int VersionOffset = 4;
    public const int BackingFileOffsetOffset = 8;
    public const int BackingFileSizeOffset = 16;
    public const int ClusterBitsOffset = 20;
    public const int SizeOffset = 24;
    public const int CryptMethodOffset = 32;
    public const int L1SizeOffset = 36;
    public const int L1TableOffsetOffset = 40;
    public const int RefcountTableOffsetOffset = 48;
    public const int RefcountTableClustersOffset = 56;
    public const int SnapshotCountOffset = 60;
    public const int SnapshotsOffsetOffset = 64;
    public const int IncompatibleFeaturesOffset = 72;
    public const int CompatibleFeaturesOffset = 80;
    public const int AutoclearFeaturesOffset = 88;
    public const int RefcountOrderOffset = 96;
    public const int HeaderLengthOffset = 100;
    public const int CompressionTypeOffset = 104;

    /// <summary>Length of a version 2 header.</summary>
    public const int V2HeaderLength = 72;

    /// <summary>Smallest valid version 3 header_length.</summary>
    public const int V3MinHeaderLength = 104;

    /// <summary>The header QEMU 7.2 writes for version 3 (up to compression_type, padded to 8): its sizeof(QCowHeader).</summary>
    public const int V3HeaderLength = 112;

    // ------------------------------------------------------------ feature bits

    public const ulong IncompatDirty = 1UL << 0;
    public const ulong IncompatCorrupt = 1UL << 1;
    public const ulong IncompatDataFile = 1UL << 2;
    public const ulong IncompatCompression = 1UL << 3;
    public const ulong IncompatExtendedL2 = 1UL << 4;
    public const ulong IncompatKnownMask = IncompatDirty | IncompatCorrupt | IncompatDataFile | IncompatCompression | IncompatExtendedL2;

    public const ulong CompatLazyRefcounts = 1UL << 0;

    public const ulong AutoclearBitmaps = 1UL << 0;
    public const ulong AutoclearDataFileRaw = 1UL << 1;
    public const ulong AutoclearKnownMask = AutoclearBitmaps | AutoclearDataFileRaw;

    public const byte FeatureTypeIncompatible = 0;
    public const byte FeatureTypeCompatible = 1;
    public const byte FeatureTypeAutoclear = 2;

    /// <summary>Size of one feature name table entry (type, bit, 46-byte name).</summary>
    public const int FeatureTableEntrySize = 48;
    public const int FeatureNameLength = 46;

    // ------------------------------------------------------------ header extensions

    public const uint ExtensionEnd = 0x00000000;
    public const uint ExtensionBackingFormat = 0xe2792aca;
    public const uint ExtensionFeatureTable = 0x6803f857;
    public const uint ExtensionBitmaps = 0x23852875;
    public const uint ExtensionCryptoHeader = 0x0537be77;
    public const uint ExtensionDataFile = 0x44415441;

    /// <summary>Size of an extension's type and length fields.</summary>
    public const int ExtensionHeaderSize = 8;

    /// <summary>QEMU keeps the backing format in a 16-byte buffer: names must be shorter.</summary>
    public const int BackingFormatBufferSize = 16;

    /// <summary>QEMU keeps file names in PATH_MAX (4096) buffers and limits backing names to 1023 bytes.</summary>
    public const int MaxBackingFileNameLength = 1023;

    public const int BitmapsExtensionSize = 24;
    public const int CryptoHeaderExtensionSize = 16;

    // ------------------------------------------------------------ encryption and compression

    public const uint CryptNone = 0;
    public const uint CryptAes = 1;
    public const uint CryptLuks = 2;

    public const byte CompressionZlib = 0;
    public const byte CompressionZstd = 1;

    /// <summary>Compressed cluster sizes are counted in 512-byte sectors.</summary>
    public const int CompressedSectorSize = 512;

    // ------------------------------------------------------------ cluster geometry and limits

    public const int MinClusterBits = 9;
    public const int MaxClusterBits = 21;
    public const int DefaultClusterSize = 65536;

    /// <summary>Subclusters per cluster with extended L2 entries.</summary>
    public const int SubclustersPerCluster = 32;

    /// <summary>QEMU's QCOW_MAX_L1_SIZE: 32 MiB of L1 table.</summary>
    public const long MaxL1TableBytes = 32L << 20;

    /// <summary>QEMU's QCOW_MAX_REFTABLE_SIZE: 8 MiB of refcount table.</summary>
    public const long MaxRefcountTableBytes = 8L << 20;

    /// <summary>QEMU's QCOW_MAX_SNAPSHOTS.</summary>
    public const int MaxSnapshots = 65536;

    /// <summary>QEMU's QCOW_MAX_SNAPSHOTS_SIZE: an average of 1 KiB per snapshot table entry.</summary>
    public const long MaxSnapshotTableBytes = 1024L * MaxSnapshots;

    /// <summary>QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA.</summary>
    public const int MaxSnapshotExtraData = 1024;

    /// <summary>Size of the fixed part of a snapshot table entry.</summary>
    public const int SnapshotHeaderSize = 40;

    /// <summary>Size of the extra data QEMU knows (vm_state_size_large, disk_size, icount).</summary>
    public const int SnapshotExtraDataSize = 24;

    public const int MaxBitmaps = 65535;
    public const long MaxBitmapDirectoryBytes = 1024L * MaxBitmaps;

    /// <summary>Largest host cluster offset that L1/L2 entries can hold (QEMU's QCOW_MAX_CLUSTER_OFFSET).</summary>
    public const long MaxClusterOffset = (1L << 56) - 1;

    // ------------------------------------------------------------ table entries

    public const int L1EntrySize = 8;
    public const int RefcountTableEntrySize = 8;

    public const ulong L1OffsetMask = 0x00fffffffffffe00UL;
    public const ulong L1ReservedMask = 0x7f000000000001ffUL;
    public const ulong L2OffsetMask = 0x00fffffffffffe00UL;
    public const ulong L2StandardReservedMask = 0x3f000000000001feUL;
    public const ulong RefcountTableOffsetMask = 0xfffffffffffffe00UL;
    public const ulong RefcountTableReservedMask = 0x1ffUL;

    /// <summary>Bit 63 of L1 and L2 entries: the refcount of the cluster is exactly one.</summary>
    public const ulong OflagCopied = 1UL << 63;

    /// <summary>Bit 62 of L2 entries: a compressed cluster.</summary>
    public const ulong OflagCompressed = 1UL << 62;

    /// <summary>Bit 0 of L2 entries (version 3, no extended L2): the cluster reads as zeroes.</summary>
    public const ulong OflagZero = 1UL << 0;

    /// <summary>Extended L2 bitmap: all 32 "allocated" bits.</summary>
    public const ulong BitmapAllAllocated = 0x00000000ffffffffUL;

    /// <summary>Extended L2 bitmap: all 32 "reads as zero" bits.</summary>
    public const ulong BitmapAllZeroes = 0xffffffff00000000UL;

    /// <summary>Bitmap bits for subclusters [from, to) allocated.</summary>
    public static ulong SubclusterAllocRange(int from, int to) => (1UL << to) - (1UL << from);

    /// <summary>Bitmap bits for subclusters [from, to) reading as zero.</summary>
    public static ulong SubclusterZeroRange(int from, int to) => SubclusterAllocRange(from, to) << 32;
}
