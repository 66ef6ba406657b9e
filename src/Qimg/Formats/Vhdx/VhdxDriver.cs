namespace Qimg.Formats.Vhdx;

/// <summary>
/// Microsoft's VHDX (QEMU's block/vhdx.c): recognised by probing, not yet opened or created.
/// </summary>
public sealed class VhdxDriver : ProbeOnlyFormatDriver
{
    public static VhdxDriver Instance { get; } = new();

    private VhdxDriver()
    {
    }

    public override string Name => "vhdx";

    public override bool QemuSupportsCreate => true;

    /// <summary>100 when the file type identifier's signature "vhdxfile" starts the file (QEMU's <c>vhdx_probe</c>).</summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.StartsWith("vhdxfile"u8) ? 100 : 0;
}
