namespace Qimg.Formats.Cloop;

/// <summary>
/// Linux compressed loop images, cloop V2.0 (QEMU's block/cloop.c, read-only there): recognised by probing, not yet
/// opened. QEMU cannot create them either.
/// </summary>
public sealed class CloopDriver : ProbeOnlyFormatDriver
{
    public static CloopDriver Instance { get; } = new();

    private CloopDriver()
    {
    }

    public override string Name => "cloop";

    /// <summary>The shell preamble every V2.0 image starts with.</summary>
    private static ReadOnlySpan<byte> Magic =>
        "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"u8;

    /// <summary>
    /// 2 when the file starts with the V2.0 preamble (QEMU's <c>cloop_probe</c>; a shorter buffer need only match its
    /// length). Only 2, so any format with a real magic wins; a file whose name ends in ".dmg" ties with dmg, which
    /// QEMU lists first.
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName)
    {
        ReadOnlySpan<byte> magic = Magic;
        int length = Math.Min(magic.Length, header.Length);
        return header[..length].SequenceEqual(magic[..length]) ? 2 : 0;
    }
}
