using System.Numerics;

namespace Qimg.Formats.Qcow2;

/// <summary>What a whole guest cluster is, from its L2 entry alone (QEMU's QCow2ClusterType).</summary>
internal enum Qcow2ClusterType
{
    Unallocated,
    /// <summary>Reads as zero, no host cluster.</summary>
    ZeroPlain,
    /// <summary>Reads as zero, with a preallocated host cluster.</summary>
    ZeroAllocated,
    Normal,
    Compressed,
}

/// <summary>What one subcluster is (QEMU's QCow2SubclusterType); without extended L2 a cluster is one subcluster.</summary>
internal enum Qcow2SubclusterType
{
    /// <summary>Not allocated, no host cluster: reads from the backing file or as zero.</summary>
    UnallocatedPlain,
    /// <summary>Not allocated, but the cluster has a host cluster (extended L2 only).</summary>
    UnallocatedAllocated,
    ZeroPlain,
    ZeroAllocated,
    Normal,
    Compressed,
    /// <summary>The entry contradicts itself (allocated and zero bits both set, or bits without a host cluster).</summary>
    Invalid,
}

/// <summary>
/// One L2 table entry: the 64-bit cluster descriptor and, with extended L2 entries, the 64-bit subcluster bitmap.
/// Pure decoding; the image geometry comes in through the arguments.
/// </summary>
/// <param name="Entry">The descriptor (bits 0-61), compressed flag (62) and copied flag (63).</param>
/// <param name="Bitmap">The subcluster allocation (bits 0-31) and zero (bits 32-63) bitmap; 0 without extended L2.</param>
internal readonly record struct Qcow2L2Entry(ulong Entry, ulong Bitmap)
{
    public bool IsCompressed => (Entry & Qcow2Layout.OflagCompressed) != 0;

    public bool IsCopied => (Entry & Qcow2Layout.OflagCopied) != 0;

    /// <summary>The host cluster offset of a standard cluster (bits 9-55).</summary>
    public long HostClusterOffset => (long)(Entry & Qcow2Layout.L2OffsetMask);

    /// <summary>
    /// The cluster type (QEMU's qcow2_get_cluster_type). With an external data file, offset 0 is a valid host offset;
    /// the copied flag tells an allocated cluster at 0 from an unallocated one.
    /// </summary>
    public Qcow2ClusterType GetClusterType(bool hasSubclusters, bool hasDataFile)
    {
        if (IsCompressed)
        {
            return Qcow2ClusterType.Compressed;
        }

        if ((Entry & Qcow2Layout.OflagZero) != 0 && !hasSubclusters)
        {
            return (Entry & Qcow2Layout.L2OffsetMask) != 0 ? Qcow2ClusterType.ZeroAllocated : Qcow2ClusterType.ZeroPlain;
        }

        if ((Entry & Qcow2Layout.L2OffsetMask) == 0)
        {
            return hasDataFile && IsCopied ? Qcow2ClusterType.Normal : Qcow2ClusterType.Unallocated;
        }

        return Qcow2ClusterType.Normal;
    }

    /// <summary>The type of subcluster <paramref name="index"/> (QEMU's qcow2_get_subcluster_type).</summary>
    public Qcow2SubclusterType GetSubclusterType(int index, bool hasSubclusters, bool hasDataFile)
    {
        Qcow2ClusterType type = GetClusterType(hasSubclusters, hasDataFile);
        if (hasSubclusters)
        {
            switch (type)
            {
                case Qcow2ClusterType.Compressed:
                    return Qcow2SubclusterType.Compressed;
                case Qcow2ClusterType.Normal:
                    if (((Bitmap >> 32) & Bitmap) != 0)
                    {
                        return Qcow2SubclusterType.Invalid;
                    }

                    if ((Bitmap & (1UL << (index + 32))) != 0)
                    {
                        return Qcow2SubclusterType.ZeroAllocated;
                    }

                    return (Bitmap & (1UL << index)) != 0 ? Qcow2SubclusterType.Normal : Qcow2SubclusterType.UnallocatedAllocated;
                default:
                    // Unallocated (the zero flag does not exist with extended L2 entries).
                    if ((Bitmap & Qcow2Layout.BitmapAllAllocated) != 0)
                    {
                        return Qcow2SubclusterType.Invalid;
                    }

                    return (Bitmap & (1UL << (index + 32))) != 0 ? Qcow2SubclusterType.ZeroPlain : Qcow2SubclusterType.UnallocatedPlain;
            }
        }

        return type switch
        {
            Qcow2ClusterType.Compressed => Qcow2SubclusterType.Compressed,
            Qcow2ClusterType.ZeroPlain => Qcow2SubclusterType.ZeroPlain,
            Qcow2ClusterType.ZeroAllocated => Qcow2SubclusterType.ZeroAllocated,
            Qcow2ClusterType.Normal => Qcow2SubclusterType.Normal,
            _ => Qcow2SubclusterType.UnallocatedPlain,
        };
    }

    /// <summary>
    /// How many subclusters from <paramref name="from"/> on have the same type as subcluster <paramref name="from"/>
    /// (QEMU's qcow2_get_subcluster_range_type); compressed clusters and clusters without subclusters count whole.
    /// </summary>
    /// <returns>The count, or -1 when the entry is invalid.</returns>
    public int CountSameType(int from, int subclustersPerCluster, bool hasSubclusters, bool hasDataFile, out Qcow2SubclusterType type)
    {
        type = GetSubclusterType(from, hasSubclusters, hasDataFile);
        if (type == Qcow2SubclusterType.Invalid)
        {
            return -1;
        }

        if (!hasSubclusters || type == Qcow2SubclusterType.Compressed)
        {
            return subclustersPerCluster - from;
        }

        uint allocated = (uint)Bitmap;
        uint zero = (uint)(Bitmap >> 32);
        uint below = from == 0 ? 0u : (uint)Qcow2Layout.SubclusterAllocRange(0, from);
        switch (type)
        {
            case Qcow2SubclusterType.Normal:
                return BitOperations.TrailingZeroCount(~(allocated | below)) - from;
            case Qcow2SubclusterType.ZeroPlain:
            case Qcow2SubclusterType.ZeroAllocated:
                return BitOperations.TrailingZeroCount(~(zero | below)) - from;
            default:
                // Unallocated: up to the next allocated or zero subcluster.
                uint stop = (allocated | zero) & ~below;
                return BitOperations.TrailingZeroCount(stop) - from;
        }
    }

    /// <summary>Host offset of a compressed cluster's data (usually not aligned) for <paramref name="clusterBits"/>.</summary>
    public long CompressedOffset(int clusterBits) => (long)(Entry & CompressedOffsetMask(clusterBits));

    /// <summary>
    /// Bytes of compressed data to read: the sectors the descriptor counts, minus the part of the first sector before
    /// the data (QEMU's qcow2_parse_compressed_l2_entry).
    /// </summary>
    public int CompressedLength(int clusterBits)
    {
        int shift = 62 - (clusterBits - 8);
        ulong sectorMask = (1UL << (clusterBits - 8)) - 1;
        int sectors = (int)((Entry >> shift) & sectorMask) + 1;
        return sectors * Qcow2Layout.CompressedSectorSize - (int)(CompressedOffset(clusterBits) & (Qcow2Layout.CompressedSectorSize - 1));
    }

    /// <summary>Mask of the offset field of a compressed cluster descriptor.</summary>
    public static ulong CompressedOffsetMask(int clusterBits) => (1UL << (62 - (clusterBits - 8))) - 1;

    /// <summary>Builds a compressed descriptor for <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public static ulong MakeCompressed(long offset, int length, int clusterBits)
    {
        long sectors = (offset + length - 1) / Qcow2Layout.CompressedSectorSize - offset / Qcow2Layout.CompressedSectorSize;
        return Qcow2Layout.OflagCompressed | ((ulong)sectors << (62 - (clusterBits - 8))) | (ulong)offset;
    }
}
