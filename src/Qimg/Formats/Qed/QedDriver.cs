using System.Buffers.Binary;

namespace Qimg.Formats.Qed;

/// <summary>
/// QEMU Enhanced Disk (QEMU's block/qed.c): recognised by probing, not yet opened or created.
/// </summary>
public sealed class QedDriver : ProbeOnlyFormatDriver
{
    /// <summary>The fixed header's size (QEMU's <c>sizeof(QEDHeader)</c>).</summary>
    private const int HeaderSize = 64;

    /// <summary>"QED\0", little endian.</summary>
    private const uint Magic = 0x00444551;

    public static QedDriver Instance { get; } = new();

    private QedDriver()
    {
    }

    public override string Name => "qed";

    public override bool QemuSupportsCreate => true;

    /// <summary>100 when the file starts with "QED\0" (QEMU's <c>bdrv_qed_probe</c>).</summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= HeaderSize && BinaryPrimitives.ReadUInt32LittleEndian(header) == Magic ? 100 : 0;
}
