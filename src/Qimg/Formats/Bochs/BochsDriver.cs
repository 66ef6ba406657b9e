using System.Buffers.Binary;

namespace Qimg.Formats.Bochs;

/// <summary>
/// The Bochs emulator's growing redolog images (QEMU's block/bochs.c, read-only there): recognised by probing, not yet
/// opened. QEMU cannot create them either.
/// </summary>
public sealed class BochsDriver : ProbeOnlyFormatDriver
{
    /// <summary>The header's size; QEMU probes only a buffer that holds all of it.</summary>
    private const int HeaderSize = 512;

    private const int TypeOffset = 32;

    private const int SubtypeOffset = 48;

    private const int VersionOffset = 64;

    private const uint Version2 = 0x00020000;

    private const uint Version1 = 0x00010000;

    public static BochsDriver Instance { get; } = new();

    private BochsDriver()
    {
    }

    public override string Name => "bochs";

    /// <summary>
    /// 100 when the magic, type and subtype are the NUL-terminated strings "Bochs Virtual HD Image", "Redolog" and
    /// "Growing" (compared as C strings, so each must end with a NUL right after its text) and the little-endian
    /// version is 1.0 or 2.0 (QEMU's <c>bochs_probe</c>).
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= HeaderSize
        && header.StartsWith("Bochs Virtual HD Image\0"u8)
        && header[TypeOffset..].StartsWith("Redolog\0"u8)
        && header[SubtypeOffset..].StartsWith("Growing\0"u8)
        && BinaryPrimitives.ReadUInt32LittleEndian(header[VersionOffset..]) is Version2 or Version1
            ? 100
            : 0;
}
