using System.Buffers.Binary;
using System.Text;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>A persistent dirty bitmap as listed in the bitmap directory.</summary>
/// <param name="Name">The bitmap's name.</param>
/// <param name="GranularityBits">log2 of the bytes per bit.</param>
/// <param name="Flags">Directory flags (bit 0 in_use, bit 1 auto).</param>
/// <param name="TableOffset">Offset of the bitmap table.</param>
/// <param name="TableSize">Entries in the bitmap table.</param>
internal sealed record Qcow2Bitmap(string Name, int GranularityBits, uint Flags, ulong TableOffset, uint TableSize)
{
    public const uint FlagInUse = 1;
    public const uint FlagAuto = 2;

    public bool IsInUse => (Flags & FlagInUse) != 0;
}

/// <summary>
/// The on-disk side of persistent bitmaps (qcow2 spec, "Bitmaps extension" and "Bitmap directory"; QEMU's
/// <c>qcow2-bitmap.c</c>): the bitmap directory, bitmap tables and bitmap data clusters, read and validated with QEMU's
/// limits and messages, and built for writing. The lifecycle (load on open, mark in use, store on close) lives in
/// <c>Qcow2Image.Bitmaps.cs</c>.
/// </summary>
internal static class Qcow2Bitmaps
{
    public const int DirectoryEntrySize = 24;

    /// <summary>Most entries in one bitmap table (QEMU's BME_MAX_TABLE_SIZE).</summary>
    public const uint MaxTableSize = 0x8000000;

    /// <summary>Most bytes of bitmap data (QEMU's BME_MAX_PHYS_SIZE, which bounds a bitmap in memory to 512 MiB).</summary>
    public const ulong MaxPhysicalSize = 0x20000000;

    public const int MinGranularityBits = 9;
    public const int MaxGranularityBits = 31;
    public const int MaxNameSize = 1023;

    private const uint ReservedFlags = 0xfffffffc;
    private const byte TypeDirtyTracking = 1;

    /// <summary>Bitmap table entry bits 1-8 and 56-63 are reserved.</summary>
    private const ulong TableEntryReservedMask = 0xff000000000001feUL;

    public const ulong TableEntryOffsetMask = 0x00fffffffffffe00UL;

    /// <summary>Bitmap table entry bit 0 without an offset: the cluster's bits are all ones.</summary>
    public const ulong TableEntryAllOnes = 1;

    /// <summary>Loads and validates the directory the header's bitmaps extension points to (at most 64 MiB, QEMU's limit).</summary>
    /// <exception cref="InvalidDataException">The directory is malformed (QEMU's messages).</exception>
    public static async ValueTask<List<Qcow2Bitmap>> ReadDirectoryAsync(BlockNode file, Qcow2Header header, long imageSize, CancellationToken cancellationToken)
    {
        var bitmaps = new List<Qcow2Bitmap>();
        if (!header.HasBitmapsExtension || header.BitmapCount == 0)
        {
            return bitmaps;
        }

        ulong size = header.BitmapDirectorySize;
        if (size == 0)
        {
            throw new InvalidDataException("Requested bitmap directory size is zero");
        }

        if (size > Qcow2Layout.MaxBitmapDirectoryBytes)
        {
            throw new InvalidDataException("Requested bitmap directory size is too big");
        }

        byte[] directory = new byte[size];
        try
        {
            // An offset past what a file can hold fails the read as QEMU's request check does (EIO).
            if (header.BitmapDirectoryOffset > (ulong)long.MaxValue - size)
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
            }

            await file.ReadAsync((long)header.BitmapDirectoryOffset, directory, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new InvalidDataException($"Failed to read bitmap directory: {Diagnostics.ErrorText.Describe(e)}", e);
        }

        int position = 0;
        while (position < directory.Length)
        {
            if (position + DirectoryEntrySize > directory.Length)
            {
                throw new InvalidDataException("Broken bitmap directory");
            }

            if (bitmaps.Count + 1 > header.BitmapCount)
            {
                throw new InvalidDataException("More bitmaps found than specified in header extension");
            }

            ReadOnlySpan<byte> entry = directory.AsSpan(position);
            ulong tableOffset = BinaryPrimitives.ReadUInt64BigEndian(entry);
            uint tableSize = BinaryPrimitives.ReadUInt32BigEndian(entry[8..]);
            uint flags = BinaryPrimitives.ReadUInt32BigEndian(entry[12..]);
            byte type = entry[16];
            int granularityBits = entry[17];
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(entry[18..]);
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(entry[20..]);
            long entrySize = (DirectoryEntrySize + nameSize + (long)extraSize + 7) & ~7L;
            if (position + entrySize > directory.Length)
            {
                throw new InvalidDataException("Broken bitmap directory");
            }

            if (extraSize != 0)
            {
                throw new InvalidDataException("Bitmap extra data is not supported");
            }

            // QEMU copies the name with g_strndup: it ends at the first NUL byte.
            ReadOnlySpan<byte> nameBytes = entry.Slice(DirectoryEntrySize, nameSize);
            int nul = nameBytes.IndexOf((byte)0);
            string name = Encoding.UTF8.GetString(nul >= 0 ? nameBytes[..nul] : nameBytes);
            if (!IsValidEntry(tableOffset, tableSize, flags, type, granularityBits, nameSize, header.ClusterSize, imageSize))
            {
                throw new InvalidDataException($"Bitmap '{name}' doesn't satisfy the constraints");
            }

            bitmaps.Add(new Qcow2Bitmap(name, granularityBits, flags, tableOffset, tableSize));
            position += (int)entrySize;
        }

        if (bitmaps.Count != header.BitmapCount)
        {
            throw new InvalidDataException("Less bitmaps found than specified in header extension");
        }

        return bitmaps;
    }

    /// <summary>
    /// QEMU's check_dir_entry: the table is present, aligned and within the limits, the granularity, flags, name and type
    /// are valid, and a bitmap that is not in use has a table large enough for the image.
    /// </summary>
    private static bool IsValidEntry(ulong tableOffset, uint tableSize, uint flags, byte type, int granularityBits, int nameSize, int clusterSize, long imageSize)
    {
        ulong physicalBytes = (ulong)tableSize * (ulong)clusterSize;
        return !(tableSize == 0 || tableOffset == 0 || tableOffset % (ulong)clusterSize != 0
            || tableSize > MaxTableSize || granularityBits > MaxGranularityBits || granularityBits < MinGranularityBits
            || (flags & ReservedFlags) != 0 || nameSize > MaxNameSize || type != TypeDirtyTracking
            || physicalBytes > MaxPhysicalSize
            || ((flags & Qcow2Bitmap.FlagInUse) == 0 && (ulong)imageSize > (physicalBytes * 8) << granularityBits));
    }

    /// <summary>Bytes a directory entry for a name of <paramref name="nameBytes"/> bytes takes (8-byte aligned).</summary>
    public static int EntrySize(int nameBytes) => (DirectoryEntrySize + nameBytes + 7) & ~7;

    /// <summary>Bytes of a directory holding <paramref name="entries"/>.</summary>
    public static long DirectorySize(IEnumerable<Qcow2Bitmap> entries)
    {
        long size = 0;
        foreach (Qcow2Bitmap entry in entries)
        {
            size += EntrySize(Encoding.UTF8.GetByteCount(entry.Name));
        }

        return size;
    }

    /// <summary>
    /// Builds the directory for <paramref name="entries"/> (QEMU's bitmap_list_store): every entry must pass the checks an
    /// entry read from disk must pass.
    /// </summary>
    /// <exception cref="IOException">EINVAL: an entry is invalid, or the directory is empty or larger than 64 MiB.</exception>
    public static byte[] BuildDirectory(IReadOnlyList<Qcow2Bitmap> entries, int clusterSize, long imageSize)
    {
        long size = DirectorySize(entries);
        if (size == 0 || size > Qcow2Layout.MaxBitmapDirectoryBytes)
        {
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
        }

        byte[] directory = new byte[size];
        int position = 0;
        foreach (Qcow2Bitmap entry in entries)
        {
            byte[] name = Encoding.UTF8.GetBytes(entry.Name);
            if (name.Length > ushort.MaxValue
                || !IsValidEntry(entry.TableOffset, entry.TableSize, entry.Flags, TypeDirtyTracking, entry.GranularityBits, name.Length, clusterSize, imageSize))
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
            }

            Span<byte> span = directory.AsSpan(position);
            BinaryPrimitives.WriteUInt64BigEndian(span, entry.TableOffset);
            BinaryPrimitives.WriteUInt32BigEndian(span[8..], entry.TableSize);
            BinaryPrimitives.WriteUInt32BigEndian(span[12..], entry.Flags);
            span[16] = TypeDirtyTracking;
            span[17] = (byte)entry.GranularityBits;
            BinaryPrimitives.WriteUInt16BigEndian(span[18..], (ushort)name.Length);
            name.CopyTo(span[DirectoryEntrySize..]);
            position += EntrySize(name.Length);
        }

        return directory;
    }

    /// <summary>QEMU's check_table_entry: no reserved bits; with an offset, bit 0 clear and the offset cluster aligned.</summary>
    public static bool IsValidTableEntry(ulong entry, int clusterSize)
    {
        if ((entry & TableEntryReservedMask) != 0)
        {
            return false;
        }

        ulong offset = entry & TableEntryOffsetMask;
        return offset == 0 || ((entry & TableEntryAllOnes) == 0 && offset % (ulong)clusterSize == 0);
    }

    /// <summary>
    /// Reads a bitmap table (QEMU's bitmap_table_load). The size was validated with the directory, so the table is at most
    /// 8 MiB (512 MiB of data in clusters of at least 512 bytes).
    /// </summary>
    /// <exception cref="IOException">EINVAL: an entry is invalid.</exception>
    public static async ValueTask<ulong[]> ReadTableAsync(BlockNode file, ulong tableOffset, uint tableSize, int clusterSize, CancellationToken cancellationToken)
    {
        byte[] raw = new byte[(long)tableSize * 8];
        await file.ReadAsync((long)tableOffset, raw, cancellationToken).ConfigureAwait(false);
        var table = new ulong[tableSize];
        for (int i = 0; i < table.Length; i++)
        {
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
            if (!IsValidTableEntry(table[i], clusterSize))
            {
                throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EINVAL);
            }
        }

        return table;
    }

    /// <summary>
    /// Entries a bitmap table needs for <paramref name="bitmap"/> in clusters of <paramref name="clusterSize"/> bytes: its
    /// serialized size (whole 64-bit words) divided by the cluster size, rounded up.
    /// </summary>
    public static long TableSizeFor(DirtyBitmap bitmap, int clusterSize) => ((bitmap.WordCount * 8) + clusterSize - 1) / clusterSize;

    /// <summary>
    /// The bytes storing <paramref name="bitmaps"/> in a new qcow2 image with clusters of <paramref name="clusterSize"/>
    /// bytes would take, every bitmap fully allocated (QEMU's qcow2_get_persistent_dirty_bitmap_size, <c>measure</c>'s
    /// "bitmaps size"): per persistent bitmap its data clusters and its table, plus the directory.
    /// </summary>
    public static long MeasureSize(IEnumerable<DirtyBitmap> bitmaps, int clusterSize)
    {
        long size = 0;
        long directorySize = 0;
        foreach (DirtyBitmap bitmap in bitmaps)
        {
            if (!bitmap.IsPersistent)
            {
                continue;
            }

            long bytes = (DirtyBitmap.BitsFor(bitmap.Size, bitmap.GranularityBits) + 7) / 8;
            long clusters = (bytes + clusterSize - 1) / clusterSize;
            size += clusters * clusterSize;
            size += ((clusters * 8) + clusterSize - 1) / clusterSize * clusterSize;
            directorySize += EntrySize(Encoding.UTF8.GetByteCount(bitmap.Name));
        }

        return size + ((directorySize + clusterSize - 1) / clusterSize * clusterSize);
    }

    /// <summary>
    /// Reads the bitmap's data clusters into <paramref name="bitmap"/> (QEMU's load_bitmap_data): each table entry holds
    /// the words of one cluster; an entry without an offset is all zeroes, or all ones with bit 0 set.
    /// </summary>
    public static async ValueTask ReadDataAsync(BlockNode file, ulong[] table, DirtyBitmap bitmap, int clusterSize, CancellationToken cancellationToken)
    {
        long wordsPerCluster = clusterSize / 8;
        long totalWords = bitmap.WordCount;
        byte[] buffer = new byte[clusterSize];
        for (int i = 0; i < table.Length; i++)
        {
            long firstWord = i * wordsPerCluster;
            long words = Math.Min(wordsPerCluster, totalWords - firstWord);
            ulong offset = table[i] & TableEntryOffsetMask;
            if (offset == 0)
            {
                if ((table[i] & TableEntryAllOnes) != 0)
                {
                    bitmap.DeserializeOnes(firstWord, words);
                }

                continue;
            }

            await file.ReadAsync((long)offset, buffer, cancellationToken).ConfigureAwait(false);
            bitmap.Deserialize(firstWord, buffer.AsSpan(0, (int)words * 8));
        }
    }
}
