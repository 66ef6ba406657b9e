using System.Buffers.Binary;
using System.Text;

namespace Qimg.Formats.Qcow2;

internal sealed partial class Qcow2Header
{
    /// <summary>How many bytes <see cref="ReadClusterBits"/> needs: QEMU's sizeof(QCowHeader).</summary>
    public const int FixedPartSize = Qcow2Layout.V3HeaderLength;

    /// <summary>
    /// Checks magic, version and cluster_bits in the first <see cref="FixedPartSize"/> bytes of an image and returns the
    /// cluster bits, so that the caller knows how much to read for <see cref="Parse"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">Not a qcow2 image, or the cluster size is out of range.</exception>
    /// <exception cref="NotSupportedException">An unsupported version.</exception>
    public static int ReadClusterBits(ReadOnlySpan<byte> start)
    {
        if (start.Length < FixedPartSize)
        {
            throw new ArgumentException("The header buffer is too short.", nameof(start));
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(start) != Qcow2Layout.Magic)
        {
            throw new InvalidDataException("Image is not in qcow2 format");
        }

        uint version = BinaryPrimitives.ReadUInt32BigEndian(start[Qcow2Layout.VersionOffset..]);
        if (version is < 2 or > 3)
        {
            throw new NotSupportedException($"Unsupported qcow2 version {version}");
        }

        uint clusterBits = BinaryPrimitives.ReadUInt32BigEndian(start[Qcow2Layout.ClusterBitsOffset..]);
        if (clusterBits is < Qcow2Layout.MinClusterBits or > Qcow2Layout.MaxClusterBits)
        {
            throw new InvalidDataException($"Unsupported cluster size: 2^{clusterBits}");
        }

        return (int)clusterBits;
    }

    /// <summary>
    /// Parses and validates the header from the image's first cluster (<paramref name="cluster"/> holds exactly one
    /// cluster, zero-filled past the end of the file), with QEMU's checks, messages and order (<c>qcow2_do_open</c>).
    /// Nothing here allocates more than the header's own strings.
    /// </summary>
    /// <param name="cluster">The first cluster of the image.</param>
    /// <param name="writable">The image is opened for writing (a corrupt image then fails).</param>
    /// <param name="warn">Receives QEMU's warnings (bitmaps made inconsistent by another program).</param>
    /// <param name="checkMode">
    /// The image is opened to be checked (QEMU's BDRV_O_CHECK): an image without refcount table is accepted and the
    /// snapshot table pointer is left to the check.
    /// </param>
    /// <exception cref="InvalidDataException">A field is invalid.</exception>
    /// <exception cref="NotSupportedException">The image needs a feature qimg does not have.</exception>
    public static Qcow2Header Parse(ReadOnlySpan<byte> cluster, bool writable, Action<string>? warn, bool checkMode = false)
    {
        int clusterBits = ReadClusterBits(cluster);
        int clusterSize = 1 << clusterBits;
        if (cluster.Length != clusterSize)
        {
            throw new ArgumentException("The buffer must hold exactly the first cluster.", nameof(cluster));
        }

        var header = new Qcow2Header
        {
            Version = (int)BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.VersionOffset..]),
            BackingFileOffset = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.BackingFileOffsetOffset..]),
            BackingFileSize = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.BackingFileSizeOffset..]),
            ClusterBits = clusterBits,
            Size = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.SizeOffset..]),
            CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.CryptMethodOffset..]),
            L1Size = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.L1SizeOffset..]),
            L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.L1TableOffsetOffset..]),
            RefcountTableOffset = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.RefcountTableOffsetOffset..]),
            RefcountTableClusters = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.RefcountTableClustersOffset..]),
            SnapshotCount = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.SnapshotCountOffset..]),
            SnapshotsOffset = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.SnapshotsOffsetOffset..]),
        };

        uint refcountOrder;
        if (header.Version == 2)
        {
            refcountOrder = 4;
            header.HeaderLength = Qcow2Layout.V2HeaderLength;
        }
        else
        {
            header.IncompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.IncompatibleFeaturesOffset..]);
            header.CompatibleFeatures = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.CompatibleFeaturesOffset..]);
            header.AutoclearFeatures = BinaryPrimitives.ReadUInt64BigEndian(cluster[Qcow2Layout.AutoclearFeaturesOffset..]);
            refcountOrder = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.RefcountOrderOffset..]);
            header.HeaderLength = BinaryPrimitives.ReadUInt32BigEndian(cluster[Qcow2Layout.HeaderLengthOffset..]);
            if (header.HeaderLength < Qcow2Layout.V3MinHeaderLength)
            {
                throw new InvalidDataException("qcow2 header too short");
            }
        }

        if (header.HeaderLength > (uint)clusterSize)
        {
            throw new InvalidDataException("qcow2 header exceeds cluster size");
        }

        if (header.HeaderLength > Qcow2Layout.V3HeaderLength)
        {
            header.UnknownHeaderFields = cluster[Qcow2Layout.V3HeaderLength..(int)header.HeaderLength].ToArray();
        }

        if (header.BackingFileOffset > (ulong)clusterSize)
        {
            throw new InvalidDataException("Invalid backing file offset");
        }

        int extensionsEnd = header.BackingFileOffset != 0 ? (int)header.BackingFileOffset : clusterSize;

        header.CompressionType = header.HeaderLength > Qcow2Layout.CompressionTypeOffset
            ? cluster[Qcow2Layout.CompressionTypeOffset]
            : Qcow2Layout.CompressionZlib;
        header.ValidateCompressionType();

        ulong unknownIncompatible = header.IncompatibleFeatures & ~Qcow2Layout.IncompatKnownMask;
        if (unknownIncompatible != 0)
        {
            // QEMU reads the extensions only for the feature names here, ignoring any error in them.
            var names = new List<Qcow2Feature>();
            try
            {
                header.ReadExtensions(cluster, extensionsEnd, names, null);
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException)
            {
            }

            throw new NotSupportedException("Unsupported qcow2 feature(s): " + DescribeUnsupported(names, unknownIncompatible));
        }

        if (header.IsCorrupt && writable)
        {
            throw new InvalidDataException("qcow2: Image is corrupt; cannot be opened read/write");
        }

        int subclusterSize = header.HasSubclusters ? clusterSize / Qcow2Layout.SubclustersPerCluster : clusterSize;
        if (subclusterSize < 1 << Qcow2Layout.MinClusterBits)
        {
            throw new InvalidDataException($"Unsupported subcluster size: {subclusterSize}");
        }

        if (refcountOrder > 6)
        {
            throw new InvalidDataException("Reference count entry width too large; may not exceed 64 bits");
        }

        header.RefcountOrder = (int)refcountOrder;

        if (header.RefcountTableClusters == 0 && !checkMode)
        {
            throw new InvalidDataException("Image does not contain a reference count table");
        }

        header.ValidateTable(header.RefcountTableOffset, header.RefcountTableClusters, clusterSize, Qcow2Layout.MaxRefcountTableBytes, "Reference count table");
        if (!checkMode)
        {
            header.ValidateTable(header.SnapshotsOffset, header.SnapshotCount, Qcow2Layout.SnapshotHeaderSize, (long)Qcow2Layout.SnapshotHeaderSize * Qcow2Layout.MaxSnapshots, "Snapshot table");
        }

        header.ValidateTable(header.L1TableOffset, header.L1Size, Qcow2Layout.L1EntrySize, Qcow2Layout.MaxL1TableBytes, "Active L1 table");

        ulong l1Needed = header.L1EntriesFor(header.Size);
        if (l1Needed > int.MaxValue)
        {
            throw new InvalidDataException("Image is too big");
        }

        if (header.L1Size < l1Needed)
        {
            throw new InvalidDataException("L1 table is too small");
        }

        if (header.CryptMethod > Qcow2Layout.CryptLuks)
        {
            throw new NotSupportedException($"Unsupported encryption method {unchecked((int)header.CryptMethod)}");
        }

        header.ReadExtensions(cluster, extensionsEnd, null, warn);

        if (header.BackingFileOffset != 0)
        {
            uint length = header.BackingFileSize;
            if (length > Math.Min(Qcow2Layout.MaxBackingFileNameLength, (ulong)clusterSize - header.BackingFileOffset))
            {
                throw new InvalidDataException("Backing file name too long");
            }

            header.BackingFile = CString(cluster.Slice((int)header.BackingFileOffset, (int)length));
        }

        return header;
    }

    /// <summary>Number of L1 entries needed to map <paramref name="size"/> bytes (QEMU's size_to_l1).</summary>
    public ulong L1EntriesFor(ulong size)
    {
        int shift = ClusterBits + (ClusterBits - (HasSubclusters ? 4 : 3));
        ulong perEntry = 1UL << shift;
        return size / perEntry + (size % perEntry != 0 ? 1UL : 0UL);
    }

    /// <summary>QEMU's validate_compression_type.</summary>
    private void ValidateCompressionType()
    {
        if (CompressionType is not (Qcow2Layout.CompressionZlib or Qcow2Layout.CompressionZstd))
        {
            throw new NotSupportedException($"qcow2: unknown compression type: {CompressionType}");
        }

        bool flagged = (IncompatibleFeatures & Qcow2Layout.IncompatCompression) != 0;
        if (CompressionType == Qcow2Layout.CompressionZlib && flagged)
        {
            throw new InvalidDataException("qcow2: Compression type incompatible feature bit must not be set");
        }

        if (CompressionType != Qcow2Layout.CompressionZlib && !flagged)
        {
            throw new InvalidDataException("qcow2: Compression type incompatible feature bit must be set");
        }
    }

    /// <summary>QEMU's qcow2_validate_table: entry count against a byte limit, offset aligned and in range.</summary>
    private void ValidateTable(ulong offset, ulong entries, long entrySize, long maxBytes, string name)
    {
        if (entries > (ulong)(maxBytes / entrySize))
        {
            throw new InvalidDataException($"{name} too large");
        }

        if ((ulong)long.MaxValue - entries * (ulong)entrySize < offset || (offset & (ulong)(ClusterSize - 1)) != 0)
        {
            throw new InvalidDataException($"{name} offset invalid");
        }
    }

    private static string DescribeUnsupported(List<Qcow2Feature> table, ulong mask)
    {
        var text = new StringBuilder();
        foreach (Qcow2Feature feature in table)
        {
            if (feature.Name.Length == 0)
            {
                // QEMU's table walk stops at the first nameless entry.
                break;
            }

            if (feature.Type == Qcow2Layout.FeatureTypeIncompatible && (mask & (1UL << feature.Bit)) != 0)
            {
                if (text.Length > 0)
                {
                    text.Append(", ");
                }

                text.Append(feature.Name);
                mask &= ~(1UL << feature.Bit);
            }
        }

        if (mask != 0)
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append("Unknown incompatible feature: ").Append(mask.ToString("x", System.Globalization.CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    /// <summary>
    /// Walks the header extensions between header_length and <paramref name="end"/> (QEMU's qcow2_read_extensions).
    /// With <paramref name="featureNames"/> set, only collects the feature name table; otherwise fills the header.
    /// </summary>
    private void ReadExtensions(ReadOnlySpan<byte> cluster, int end, List<Qcow2Feature>? featureNames, Action<string>? warn)
    {
        long offset = HeaderLength;
        bool collectOnly = featureNames is not null;
        while (offset < end)
        {
            // The extension header itself may straddle the end; QEMU reads it anyway (the cluster is in memory).
            uint magic = offset + 4 <= cluster.Length ? BinaryPrimitives.ReadUInt32BigEndian(cluster[(int)offset..]) : 0;
            uint length = offset + 8 <= cluster.Length ? BinaryPrimitives.ReadUInt32BigEndian(cluster[(int)(offset + 4)..]) : 0;
            offset += Qcow2Layout.ExtensionHeaderSize;
            if (offset > end || length > end - offset)
            {
                throw new InvalidDataException("Header extension too large");
            }

            ReadOnlySpan<byte> data = cluster.Slice((int)offset, (int)length);
            switch (magic)
            {
                case Qcow2Layout.ExtensionEnd:
                    return;

                case Qcow2Layout.ExtensionBackingFormat:
                    if (length >= Qcow2Layout.BackingFormatBufferSize)
                    {
                        throw new InvalidDataException($"ERROR: ext_backing_format: len={length} too large (>={Qcow2Layout.BackingFormatBufferSize})");
                    }

                    if (!collectOnly)
                    {
                        BackingFormat = CString(data);
                    }

                    break;

                case Qcow2Layout.ExtensionFeatureTable:
                    if (collectOnly)
                    {
                        for (int i = 0; i + Qcow2Layout.FeatureTableEntrySize <= data.Length; i += Qcow2Layout.FeatureTableEntrySize)
                        {
                            featureNames!.Add(new Qcow2Feature(data[i], data[i + 1], CString(data.Slice(i + 2, Qcow2Layout.FeatureNameLength))));
                        }
                    }
                    else
                    {
                        for (int i = 0; i + Qcow2Layout.FeatureTableEntrySize <= data.Length; i += Qcow2Layout.FeatureTableEntrySize)
                        {
                            FeatureTable.Add(new Qcow2Feature(data[i], data[i + 1], CString(data.Slice(i + 2, Qcow2Layout.FeatureNameLength))));
                        }
                    }

                    break;

                case Qcow2Layout.ExtensionCryptoHeader:
                    if (CryptMethod != Qcow2Layout.CryptLuks)
                    {
                        throw new InvalidDataException("CRYPTO header extension only expected with LUKS encryption method");
                    }

                    if (length != Qcow2Layout.CryptoHeaderExtensionSize)
                    {
                        throw new InvalidDataException($"CRYPTO header extension size {length}, but expected size {Qcow2Layout.CryptoHeaderExtensionSize}");
                    }

                    ulong cryptoOffset = BinaryPrimitives.ReadUInt64BigEndian(data);
                    if ((cryptoOffset & (ulong)(ClusterSize - 1)) != 0)
                    {
                        throw new InvalidDataException($"Encryption header offset '{cryptoOffset}' is not a multiple of cluster size '{ClusterSize}'");
                    }

                    if (!collectOnly)
                    {
                        CryptoHeaderOffset = cryptoOffset;
                        CryptoHeaderLength = BinaryPrimitives.ReadUInt64BigEndian(data[8..]);
                    }

                    break;

                case Qcow2Layout.ExtensionBitmaps:
                    if (length != Qcow2Layout.BitmapsExtensionSize)
                    {
                        throw new InvalidDataException("bitmaps_ext: Invalid extension length");
                    }

                    if ((AutoclearFeatures & Qcow2Layout.AutoclearBitmaps) == 0)
                    {
                        if (!collectOnly)
                        {
                            HasIgnoredBitmapsExtension = true;
                            // QEMU follows the warning with an error_printf line that lacks its newline; qimg ends it.
                            warn?.Invoke((Version < 3
                                ? "This qcow2 v2 image contains bitmaps, but they may have been modified by a program without persistent bitmap support; so now they must all be considered inconsistent"
                                : "a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent")
                                + "\nSome clusters may be leaked, run 'qemu-img check -r' on the image file to fix.");
                        }

                        break;
                    }

                    ParseBitmapsExtension(data, collectOnly);
                    break;

                case Qcow2Layout.ExtensionDataFile:
                    if (!collectOnly)
                    {
                        DataFile = CString(data);
                    }

                    break;

                default:
                    if (!collectOnly)
                    {
                        // QEMU keeps these in a list it inserts at the head of, and writes them back in list order.
                        UnknownExtensions.Insert(0, new Qcow2UnknownExtension(magic, data.ToArray()));
                    }

                    break;
            }

            offset += (length + 7L) & ~7L;
        }
    }

    private void ParseBitmapsExtension(ReadOnlySpan<byte> data, bool collectOnly)
    {
        uint count = BinaryPrimitives.ReadUInt32BigEndian(data);
        uint reserved = BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
        ulong directorySize = BinaryPrimitives.ReadUInt64BigEndian(data[8..]);
        ulong directoryOffset = BinaryPrimitives.ReadUInt64BigEndian(data[16..]);
        if (reserved != 0)
        {
            throw new InvalidDataException("bitmaps_ext: Reserved field is not zero");
        }

        if (count > Qcow2Layout.MaxBitmaps)
        {
            throw new InvalidDataException($"bitmaps_ext: Image has {count} bitmaps, exceeding the QEMU supported maximum of {Qcow2Layout.MaxBitmaps}");
        }

        if (count == 0)
        {
            throw new InvalidDataException("found bitmaps extension with zero bitmaps");
        }

        if ((directoryOffset & (ulong)(ClusterSize - 1)) != 0)
        {
            throw new InvalidDataException("bitmaps_ext: invalid bitmap directory offset");
        }

        if (directorySize > Qcow2Layout.MaxBitmapDirectoryBytes)
        {
            throw new InvalidDataException($"bitmaps_ext: bitmap directory size ({directorySize}) exceeds the maximum supported size ({Qcow2Layout.MaxBitmapDirectoryBytes})");
        }

        if (!collectOnly)
        {
            HasBitmapsExtension = true;
            BitmapCount = count;
            BitmapDirectorySize = directorySize;
            BitmapDirectoryOffset = directoryOffset;
        }
    }

    /// <summary>A string stored without terminator, read as QEMU does (it stops at an embedded NUL).</summary>
    private static string CString(ReadOnlySpan<byte> bytes)
    {
        int nul = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? bytes[..nul] : bytes);
    }
}
