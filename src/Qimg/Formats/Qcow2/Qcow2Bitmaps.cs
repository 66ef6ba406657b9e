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
}

/// <summary>
/// Reads the bitmap directory (QEMU's bitmap_list_load and check_dir_entry), for <c>info</c>. Bitmap contents are not
/// loaded: qimg does not track or update persistent bitmaps.
/// </summary>
internal static class Qcow2Bitmaps
{
    private const int DirectoryEntrySize = 24;
    private const uint MaxTableSize = 0x8000000;
    private const ulong MaxPhysicalSize = 0x20000000;
    private const int MinGranularityBits = 9;
    private const int MaxGranularityBits = 31;
    private const int MaxNameSize = 1023;
    private const uint ReservedFlags = 0xfffffffc;
    private const byte TypeDirtyTracking = 1;

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
        await file.ReadAsync((long)header.BitmapDirectoryOffset, directory, cancellationToken).ConfigureAwait(false);
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

            ReadOnlySpan<byte> nameBytes = entry.Slice(DirectoryEntrySize, nameSize);
            ulong physicalBytes = (ulong)tableSize * (ulong)header.ClusterSize;
            bool invalid = tableSize == 0 || tableOffset == 0 || tableOffset % (ulong)header.ClusterSize != 0
                || tableSize > MaxTableSize || granularityBits > MaxGranularityBits || granularityBits < MinGranularityBits
                || (flags & ReservedFlags) != 0 || nameSize > MaxNameSize || type != TypeDirtyTracking
                || physicalBytes > MaxPhysicalSize
                || ((flags & Qcow2Bitmap.FlagInUse) == 0 && (ulong)imageSize > (physicalBytes * 8) << granularityBits);
            if (invalid)
            {
                throw new InvalidDataException($"Bitmap '{Encoding.UTF8.GetString(nameBytes)}' doesn't satisfy the constraints");
            }

            bitmaps.Add(new Qcow2Bitmap(Encoding.UTF8.GetString(nameBytes), granularityBits, flags, tableOffset, tableSize));
            position += (int)entrySize;
        }

        if (bitmaps.Count != header.BitmapCount)
        {
            throw new InvalidDataException("Less bitmaps found than specified in header extension");
        }

        return bitmaps;
    }
}
