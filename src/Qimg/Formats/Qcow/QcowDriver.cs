using System.Buffers.Binary;

namespace Qimg.Formats.Qcow;

/// <summary>
/// QEMU's original copy-on-write format, qcow version 1 (QEMU's block/qcow.c): recognised by probing, not yet opened
/// or created. It shares qcow2's magic; the version field tells them apart.
/// </summary>
public sealed class QcowDriver : ProbeOnlyFormatDriver
{
    /// <summary>The header's size (QEMU's <c>sizeof(QCowHeader)</c> in qcow.c).</summary>
    private const int HeaderSize = 48;

    /// <summary>"QFI\xfb", big endian, as in qcow2.</summary>
    private const uint Magic = 0x514649fb;

    private const int VersionOffset = 4;

    private const uint Version = 1;

    public static QcowDriver Instance { get; } = new();

    private QcowDriver()
    {
    }

    public override string Name => "qcow";

    public override bool QemuSupportsCreate => true;

    /// <summary>100 for the magic "QFI\xfb" with version exactly 1 (QEMU's <c>qcow_probe</c>; qcow2 takes 2 and up).</summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= HeaderSize
        && BinaryPrimitives.ReadUInt32BigEndian(header) == Magic
        && BinaryPrimitives.ReadUInt32BigEndian(header[VersionOffset..]) == Version
            ? 100
            : 0;
}
