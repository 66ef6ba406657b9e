using System.Buffers.Binary;

namespace Qimg.Formats.Luks;

/// <summary>
/// LUKS version 1 encrypted images (QEMU's block/crypto.c with crypto/block-luks.c): recognised by probing, not yet
/// opened or created.
/// </summary>
public sealed class LuksDriver : ProbeOnlyFormatDriver
{
    private const int VersionOffset = 6;

    /// <summary>Where the cipher name starts: QEMU probes only a buffer that reaches it.</summary>
    private const int CipherNameOffset = 8;

    private const ushort Version = 1;

    /// <summary>"LUKS\xba\xbe".</summary>
    private static ReadOnlySpan<byte> Magic => [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xba, 0xbe];

    public static LuksDriver Instance { get; } = new();

    private LuksDriver()
    {
    }

    public override string Name => "luks";

    public override bool QemuSupportsCreate => true;

    /// <summary>
    /// 100 for the magic "LUKS\xba\xbe" followed by big-endian version 1 (QEMU's <c>block_crypto_probe_luks</c>); LUKS2
    /// headers score 0, as in QEMU 7.2.
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= CipherNameOffset
        && header.StartsWith(Magic)
        && BinaryPrimitives.ReadUInt16BigEndian(header[VersionOffset..]) == Version
            ? 100
            : 0;
}
