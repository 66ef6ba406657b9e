using System.Buffers.Binary;

namespace Qimg.Formats.Parallels;

/// <summary>
/// Parallels' disk format (QEMU's block/parallels.c): recognised by probing, not yet opened or created.
/// </summary>
public sealed class ParallelsDriver : ProbeOnlyFormatDriver
{
    /// <summary>The header's size (QEMU's <c>sizeof(ParallelsHeader)</c>).</summary>
    private const int HeaderSize = 64;

    private const int VersionOffset = 16;

    private const uint Version = 2;

    public static ParallelsDriver Instance { get; } = new();

    private ParallelsDriver()
    {
    }

    public override string Name => "parallels";

    public override bool QemuSupportsCreate => true;

    /// <summary>
    /// 100 when the 16-byte magic is "WithoutFreeSpace" or "WithouFreSpacExt" and the little-endian version is 2
    /// (QEMU's <c>parallels_probe</c>).
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= HeaderSize
        && (header.StartsWith("WithoutFreeSpace"u8) || header.StartsWith("WithouFreSpacExt"u8))
        && BinaryPrimitives.ReadUInt32LittleEndian(header[VersionOffset..]) == Version
            ? 100
            : 0;
}
