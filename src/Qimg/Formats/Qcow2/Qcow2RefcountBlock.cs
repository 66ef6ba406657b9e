using System.Buffers.Binary;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Packing of refcount block entries for every width: 1, 2 and 4 bits (least significant bits first within a byte), and
/// 8, 16, 32 and 64 bits big endian. <c>order</c> is log2 of the width (refcount_order).
/// </summary>
internal static class Qcow2RefcountBlock
{
    /// <summary>Number of entries in one block of <paramref name="clusterSize"/> bytes.</summary>
    public static long EntriesPerBlock(int clusterSize, int order) => (long)clusterSize * 8 >> order;

    /// <summary>The largest refcount the width can hold.</summary>
    public static ulong MaxRefcount(int order) => order == 6 ? ulong.MaxValue : (1UL << (1 << order)) - 1;

    public static ulong Get(ReadOnlySpan<byte> block, long index, int order)
    {
        switch (order)
        {
            case 0:
                return (ulong)(block[(int)(index >> 3)] >> (int)(index & 7)) & 0x1;
            case 1:
                return (ulong)(block[(int)(index >> 2)] >> (int)(2 * (index & 3))) & 0x3;
            case 2:
                return (ulong)(block[(int)(index >> 1)] >> (int)(4 * (index & 1))) & 0xf;
            case 3:
                return block[(int)index];
            case 4:
                return BinaryPrimitives.ReadUInt16BigEndian(block[(int)(index * 2)..]);
            case 5:
                return BinaryPrimitives.ReadUInt32BigEndian(block[(int)(index * 4)..]);
            case 6:
                return BinaryPrimitives.ReadUInt64BigEndian(block[(int)(index * 8)..]);
            default:
                throw new ArgumentOutOfRangeException(nameof(order));
        }
    }

    /// <summary>Stores <paramref name="value"/>, which must fit the width.</summary>
    public static void Set(Span<byte> block, long index, ulong value, int order)
    {
        if (value > MaxRefcount(order))
        {
            throw new ArgumentOutOfRangeException(nameof(value));
        }

        switch (order)
        {
            case 0:
                SetBits(block, (int)(index >> 3), (int)(index & 7), 0x1, (int)value);
                break;
            case 1:
                SetBits(block, (int)(index >> 2), (int)(2 * (index & 3)), 0x3, (int)value);
                break;
            case 2:
                SetBits(block, (int)(index >> 1), (int)(4 * (index & 1)), 0xf, (int)value);
                break;
            case 3:
                block[(int)index] = (byte)value;
                break;
            case 4:
                BinaryPrimitives.WriteUInt16BigEndian(block[(int)(index * 2)..], (ushort)value);
                break;
            case 5:
                BinaryPrimitives.WriteUInt32BigEndian(block[(int)(index * 4)..], (uint)value);
                break;
            case 6:
                BinaryPrimitives.WriteUInt64BigEndian(block[(int)(index * 8)..], value);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(order));
        }
    }

    private static void SetBits(Span<byte> block, int byteIndex, int shift, int mask, int value) =>
        block[byteIndex] = (byte)((block[byteIndex] & ~(mask << shift)) | (value << shift));

    /// <summary>
    /// Bytes of refcount blocks and table needed to count <paramref name="clusters"/> clusters plus themselves (QEMU's
    /// qcow2_refcount_metadata_size: the fixed point where no further metadata is needed).
    /// </summary>
    /// <param name="generousIncrease">Leave room for a refcount table 1.5 times as large as needed.</param>
    public static long MetadataSize(long clusters, int clusterSize, int order, bool generousIncrease, out long blockCount)
    {
        long blocksPerTableCluster = clusterSize / Qcow2Layout.RefcountTableEntrySize;
        long refcountsPerBlock = EntriesPerBlock(clusterSize, order);
        long table = 0;
        long blocks = 0;
        long n = 0;
        long last;
        do
        {
            last = n;
            blocks = DivRoundUp(clusters + table + blocks, refcountsPerBlock);
            table = DivRoundUp(blocks, blocksPerTableCluster);
            n = clusters + blocks + table;
            if (n == last && generousIncrease)
            {
                clusters += DivRoundUp(table, 2);
                n = 0;
                generousIncrease = false;
            }
        }
        while (n != last);

        blockCount = blocks;
        return (blocks + table) * clusterSize;
    }

    private static long DivRoundUp(long value, long divisor) => (value + divisor - 1) / divisor;
}
