using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Qimg.Tests.Formats.Qcow2.Bitmaps;

/// <summary>
/// An independent reader of the bitmaps stored in a qcow2 file (spec: "Bitmaps extension", "Bitmap directory", "Bitmap
/// table"), for comparing what qimg and QEMU store, and for making hostile images.
/// </summary>
internal static class BitmapFile
{
    private const uint BitmapsExtension = 0x23852875;

    /// <summary>One directory entry, with the file offset of the entry itself.</summary>
    public sealed record Entry(long Position, ulong TableOffset, uint TableSize, uint Flags, int GranularityBits, string Name);

    /// <summary>The cluster size and the bitmaps extension (count, directory size and offset), or null without one.</summary>
    public static (int ClusterSize, uint Count, ulong DirectorySize, ulong DirectoryOffset, long ExtensionPosition)? ReadExtension(byte[] file)
    {
        int clusterSize = 1 << (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(20));
        long offset = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(4)) >= 3 ? BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(100)) : 72;
        while (offset + 8 <= clusterSize)
        {
            uint magic = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan((int)offset));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan((int)offset + 4));
            if (magic == 0)
            {
                break;
            }

            if (magic == BitmapsExtension)
            {
                ReadOnlySpan<byte> data = file.AsSpan((int)offset + 8);
                return (clusterSize, BinaryPrimitives.ReadUInt32BigEndian(data), BinaryPrimitives.ReadUInt64BigEndian(data[8..]), BinaryPrimitives.ReadUInt64BigEndian(data[16..]), offset);
            }

            offset += 8 + ((length + 7) & ~7L);
        }

        return null;
    }

    public static List<Entry> ReadDirectory(string path) => ReadDirectory(File.ReadAllBytes(path));

    public static List<Entry> ReadDirectory(byte[] file)
    {
        var entries = new List<Entry>();
        if (ReadExtension(file) is not { } extension)
        {
            return entries;
        }

        long position = (long)extension.DirectoryOffset;
        for (uint i = 0; i < extension.Count; i++)
        {
            ReadOnlySpan<byte> e = file.AsSpan((int)position);
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(e[18..]);
            entries.Add(new Entry(
                position,
                BinaryPrimitives.ReadUInt64BigEndian(e),
                BinaryPrimitives.ReadUInt32BigEndian(e[8..]),
                BinaryPrimitives.ReadUInt32BigEndian(e[12..]),
                e[17],
                Encoding.UTF8.GetString(e.Slice(24, nameSize))));
            position += (24 + nameSize + 7) & ~7;
        }

        return entries;
    }

    /// <summary>
    /// A readable summary of every stored bitmap: name, flags, granularity, table size, and the non-zero 64-bit words of
    /// its data (clusters without an offset are zero, or all ones with bit 0 set).
    /// </summary>
    public static string Describe(string path)
    {
        byte[] file = File.ReadAllBytes(path);
        var text = new StringBuilder();
        if (ReadExtension(file) is not { } extension)
        {
            return "(no bitmaps)";
        }

        ulong autoclear = BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan(88));
        text.Append(CultureInfo.InvariantCulture, $"autoclear={autoclear & 1}\n");
        foreach (Entry entry in ReadDirectory(file))
        {
            text.Append(CultureInfo.InvariantCulture, $"{entry.Name} flags={entry.Flags} granularity={entry.GranularityBits} table={entry.TableSize}:");
            if ((entry.Flags & 1) == 0)
            {
                for (int i = 0; i < entry.TableSize; i++)
                {
                    ulong tableEntry = BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)entry.TableOffset + i * 8));
                    ulong offset = tableEntry & 0x00fffffffffffe00UL;
                    for (int w = 0; w < extension.ClusterSize / 8; w++)
                    {
                        ulong word = offset != 0 ? BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan((int)offset + w * 8))
                            : (tableEntry & 1) != 0 ? ulong.MaxValue : 0;
                        if (word != 0)
                        {
                            text.Append(CultureInfo.InvariantCulture, $" {(i * extension.ClusterSize / 8) + w}:{word:x}");
                        }
                    }
                }
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Overwrites bytes of a file.</summary>
    public static void Patch(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using FileStream stream = File.OpenWrite(path);
        stream.Position = offset;
        stream.Write(bytes);
    }

    public static void PatchUInt64(string path, long offset, ulong value)
    {
        byte[] raw = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(raw, value);
        Patch(path, offset, raw);
    }

    public static void PatchUInt32(string path, long offset, uint value)
    {
        byte[] raw = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(raw, value);
        Patch(path, offset, raw);
    }
}
