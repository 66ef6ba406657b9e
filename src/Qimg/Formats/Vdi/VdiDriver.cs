using System.Buffers.Binary;

namespace Qimg.Formats.Vdi;

/// <summary>
/// VirtualBox's VDI (QEMU's block/vdi.c): recognised by probing, not yet opened or created.
/// </summary>
public sealed class VdiDriver : ProbeOnlyFormatDriver
{
    /// <summary>The header's size (QEMU's <c>sizeof(VdiHeader)</c>); a shorter buffer is not probed.</summary>
    private const int HeaderSize = 512;

    /// <summary>The signature follows the 64-byte text ("&lt;&lt;&lt; Oracle VM VirtualBox Disk Image &gt;&gt;&gt;\n").</summary>
    private const int SignatureOffset = 0x40;

    private const uint Signature = 0xbeda107f;

    public static VdiDriver Instance { get; } = new();

    private VdiDriver()
    {
    }

    public override string Name => "vdi";

    public override bool QemuSupportsCreate => true;

    /// <summary>
    /// 100 when the little-endian signature 0xbeda107f is at offset 64 (QEMU's <c>vdi_probe</c>). The text before it is
    /// not checked, so a file can carry both another format's magic and this signature: QEMU then picks by its driver
    /// list order, which <see cref="FormatRegistry.Default"/> reproduces.
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= HeaderSize && BinaryPrimitives.ReadUInt32LittleEndian(header[SignatureOffset..]) == Signature ? 100 : 0;
}
