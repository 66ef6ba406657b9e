using System.Buffers.Binary;
using System.Text;

namespace Qimg.Formats.Qcow2;

internal sealed partial class Qcow2Header
{
    /// <summary>The feature name table QEMU 7.2 writes into every version 3 image with clusters above 4 KiB.</summary>
    private static readonly Qcow2Feature[] s_featureTable =
    [
        new(Qcow2Layout.FeatureTypeIncompatible, 0, "dirty bit"),
        new(Qcow2Layout.FeatureTypeIncompatible, 1, "corrupt bit"),
        new(Qcow2Layout.FeatureTypeIncompatible, 2, "external data file"),
        new(Qcow2Layout.FeatureTypeIncompatible, 3, "compression type"),
        new(Qcow2Layout.FeatureTypeIncompatible, 4, "extended L2 entries"),
        new(Qcow2Layout.FeatureTypeCompatible, 0, "lazy refcounts"),
        new(Qcow2Layout.FeatureTypeAutoclear, 0, "bitmaps"),
        new(Qcow2Layout.FeatureTypeAutoclear, 1, "raw external data"),
    ];

    /// <summary>
    /// Lays out the whole first cluster as QEMU's <c>qcow2_update_header</c> does: the fixed header (72 bytes for
    /// version 2, 112 plus preserved unknown fields for version 3), then the extensions (backing format, data file,
    /// encryption header pointer, feature table, bitmaps, unknown ones), the end marker, and the backing file name.
    /// Updates <see cref="HeaderLength"/>, <see cref="BackingFileOffset"/> and <see cref="BackingFileSize"/>.
    /// </summary>
    /// <param name="cluster">Exactly one cluster; fully overwritten.</param>
    /// <param name="writeDataFileName">Whether the data file extension is written (QEMU writes it only while a data file is attached).</param>
    /// <exception cref="IOException">The extensions and backing file name do not fit in one cluster.</exception>
    public void WriteTo(Span<byte> cluster, bool writeDataFileName)
    {
        if (cluster.Length != ClusterSize)
        {
            throw new ArgumentException("The buffer must be exactly one cluster.", nameof(cluster));
        }

        cluster.Clear();
        ValidateCompressionType();
        uint headerLength = (uint)(Qcow2Layout.V3HeaderLength + UnknownHeaderFields.Length);
        Span<byte> h = cluster;
        BinaryPrimitives.WriteUInt32BigEndian(h, Qcow2Layout.Magic);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.VersionOffset..], (uint)Version);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.ClusterBitsOffset..], (uint)ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.SizeOffset..], Size);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.CryptMethodOffset..], CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.L1SizeOffset..], L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.L1TableOffsetOffset..], L1TableOffset);
        BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.RefcountTableOffsetOffset..], RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.RefcountTableClustersOffset..], RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.SnapshotCountOffset..], SnapshotCount);
        BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.SnapshotsOffsetOffset..], SnapshotsOffset);

        int position;
        if (Version == 2)
        {
            position = Qcow2Layout.V2HeaderLength;
        }
        else
        {
            BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.IncompatibleFeaturesOffset..], IncompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.CompatibleFeaturesOffset..], CompatibleFeatures);
            BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.AutoclearFeaturesOffset..], AutoclearFeatures);
            BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.RefcountOrderOffset..], (uint)RefcountOrder);
            BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.HeaderLengthOffset..], headerLength);
            h[Qcow2Layout.CompressionTypeOffset] = CompressionType;
            position = Qcow2Layout.V3HeaderLength;
            HeaderLength = headerLength;
        }

        // QEMU preserves unknown header fields for every version (they only exist in version 3 images).
        position = Append(cluster, position, UnknownHeaderFields);

        if (BackingFormat is not null)
        {
            position = AppendExtension(cluster, position, Qcow2Layout.ExtensionBackingFormat, Encoding.UTF8.GetBytes(BackingFormat));
        }

        if (writeDataFileName && DataFile is not null)
        {
            position = AppendExtension(cluster, position, Qcow2Layout.ExtensionDataFile, Encoding.UTF8.GetBytes(DataFile));
        }

        if (CryptoHeaderOffset != 0)
        {
            byte[] crypto = new byte[Qcow2Layout.CryptoHeaderExtensionSize];
            BinaryPrimitives.WriteUInt64BigEndian(crypto, CryptoHeaderOffset);
            BinaryPrimitives.WriteUInt64BigEndian(crypto.AsSpan(8), CryptoHeaderLength);
            position = AppendExtension(cluster, position, Qcow2Layout.ExtensionCryptoHeader, crypto);
        }

        // QEMU leaves the feature table out for clusters of 4 KiB and less to keep room for the backing file name.
        if (Version >= 3 && ClusterSize > 4096)
        {
            byte[] table = new byte[s_featureTable.Length * Qcow2Layout.FeatureTableEntrySize];
            for (int i = 0; i < s_featureTable.Length; i++)
            {
                Span<byte> entry = table.AsSpan(i * Qcow2Layout.FeatureTableEntrySize, Qcow2Layout.FeatureTableEntrySize);
                entry[0] = s_featureTable[i].Type;
                entry[1] = s_featureTable[i].Bit;
                Encoding.ASCII.GetBytes(s_featureTable[i].Name, entry[2..]);
            }

            position = AppendExtension(cluster, position, Qcow2Layout.ExtensionFeatureTable, table);
        }

        if (HasBitmapsExtension && BitmapCount > 0)
        {
            byte[] bitmaps = new byte[Qcow2Layout.BitmapsExtensionSize];
            BinaryPrimitives.WriteUInt32BigEndian(bitmaps, BitmapCount);
            BinaryPrimitives.WriteUInt64BigEndian(bitmaps.AsSpan(8), BitmapDirectorySize);
            BinaryPrimitives.WriteUInt64BigEndian(bitmaps.AsSpan(16), BitmapDirectoryOffset);
            position = AppendExtension(cluster, position, Qcow2Layout.ExtensionBitmaps, bitmaps);
        }

        foreach (Qcow2UnknownExtension extension in UnknownExtensions)
        {
            position = AppendExtension(cluster, position, extension.Magic, extension.Data);
        }

        position = AppendExtension(cluster, position, Qcow2Layout.ExtensionEnd, []);

        if (BackingFile is not null)
        {
            byte[] name = Encoding.UTF8.GetBytes(BackingFile);
            position = Append(cluster, position, name);
            BackingFileOffset = (ulong)(position - name.Length);
            BackingFileSize = (uint)name.Length;
        }
        else
        {
            BackingFileOffset = 0;
            BackingFileSize = 0;
        }

        BinaryPrimitives.WriteUInt64BigEndian(h[Qcow2Layout.BackingFileOffsetOffset..], BackingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(h[Qcow2Layout.BackingFileSizeOffset..], BackingFileSize);
    }

    private static int AppendExtension(Span<byte> cluster, int position, uint magic, ReadOnlySpan<byte> data)
    {
        int total = Qcow2Layout.ExtensionHeaderSize + ((data.Length + 7) & ~7);
        if (cluster.Length - position < total)
        {
            throw new IOException("No space left on device");
        }

        BinaryPrimitives.WriteUInt32BigEndian(cluster[position..], magic);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[(position + 4)..], (uint)data.Length);
        data.CopyTo(cluster[(position + Qcow2Layout.ExtensionHeaderSize)..]);
        return position + total;
    }

    private static int Append(Span<byte> cluster, int position, ReadOnlySpan<byte> data)
    {
        if (cluster.Length - position < data.Length)
        {
            throw new IOException("No space left on device");
        }

        data.CopyTo(cluster[position..]);
        return position + data.Length;
    }
}
