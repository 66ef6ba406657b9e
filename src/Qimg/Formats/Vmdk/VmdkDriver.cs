using System.Buffers.Binary;

namespace Qimg.Formats.Vmdk;

/// <summary>
/// VMware's VMDK (QEMU's block/vmdk.c): recognised by probing (a sparse extent's magic, or a descriptor file's first
/// <c>version=</c> line), not yet opened or created.
/// </summary>
public sealed class VmdkDriver : ProbeOnlyFormatDriver
{
    /// <summary>"COWD": a VMware 3 (ESX) sparse extent.</summary>
    private const uint Vmdk3Magic = 0x434f5744;

    /// <summary>"KDMV": a VMware 4 (hosted sparse or streamOptimized) extent.</summary>
    private const uint Vmdk4Magic = 0x4b444d56;

    public static VmdkDriver Instance { get; } = new();

    private VmdkDriver()
    {
    }

    public override string Name => "vmdk";

    public override bool QemuSupportsCreate => true;

    /// <summary>
    /// 100 for a sparse extent's magic, or for a text descriptor: comment lines ('#' to the end of the line) and lines
    /// of spaces may come first, then "version=1", "2" or "3" ends a line ("\n" or "\r\n"). Anything else is 0 (QEMU's
    /// <c>vmdk_probe</c>).
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName)
    {
        if (header.Length < 4)
        {
            return 0;
        }

        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (magic is Vmdk3Magic or Vmdk4Magic)
        {
            return 100;
        }

        return IsDescriptor(header) ? 100 : 0;
    }

    private static bool IsDescriptor(ReadOnlySpan<byte> text)
    {
        int p = 0;
        while (p < text.Length)
        {
            if (text[p] == (byte)'#')
            {
                int newline = text[p..].IndexOf((byte)'\n');
                p = newline < 0 ? text.Length : p + newline + 1;
                continue;
            }

            if (text[p] == (byte)' ')
            {
                while (p < text.Length && text[p] == (byte)' ')
                {
                    p++;
                }

                if (p < text.Length && text[p] == (byte)'\r')
                {
                    p++;
                }

                // Only blank lines may come before the version line.
                if (p == text.Length || text[p] != (byte)'\n')
                {
                    return false;
                }

                p++;
                continue;
            }

            ReadOnlySpan<byte> rest = text[p..];
            return IsVersionLine(rest, "\n"u8) || IsVersionLine(rest, "\r\n"u8);
        }

        return false;
    }

    private static bool IsVersionLine(ReadOnlySpan<byte> line, ReadOnlySpan<byte> lineEnd) =>
        line.StartsWith("version="u8)
        && line.Length >= "version=X"u8.Length + lineEnd.Length
        && line["version="u8.Length] is (byte)'1' or (byte)'2' or (byte)'3'
        && line["version=X"u8.Length..].StartsWith(lineEnd);
}
