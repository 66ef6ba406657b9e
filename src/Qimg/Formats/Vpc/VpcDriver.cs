namespace Qimg.Formats.Vpc;

/// <summary>
/// Microsoft's VHD / Virtual PC (QEMU's block/vpc.c): recognised by probing, not yet opened or created.
/// </summary>
public sealed class VpcDriver : ProbeOnlyFormatDriver
{
    public static VpcDriver Instance { get; } = new();

    private VpcDriver()
    {
    }

    public override string Name => "vpc";

    public override bool QemuSupportsCreate => true;

    /// <summary>
    /// 100 when the file starts with the footer copy's cookie "conectix" (QEMU's <c>vpc_probe</c>). Only dynamic
    /// images have that copy; a fixed image keeps its footer at the end of the file alone, so QEMU 7.2 probes it as
    /// raw, and so does qimg.
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.StartsWith("conectix"u8) ? 100 : 0;
}
