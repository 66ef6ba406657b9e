namespace Qimg.Formats.Dmg;

/// <summary>
/// Apple's disk images (UDIF, QEMU's block/dmg.c, read-only there): recognised by probing, not yet opened. QEMU cannot
/// create them either.
/// </summary>
public sealed class DmgDriver : ProbeOnlyFormatDriver
{
    public static DmgDriver Instance { get; } = new();

    private DmgDriver()
    {
    }

    public override string Name => "dmg";

    /// <summary>
    /// 2 when the name the image is opened by ends in ".dmg" (case-sensitive) and is longer than that ending; the
    /// contents are not looked at, since UDIF's trailer sits at the end of the file (QEMU's <c>dmg_probe</c>). Without a
    /// name (QEMU passes none for <c>--image-opts</c>, <c>json:</c> names and raw's block-0 check) the score is 0.
    /// </summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        fileName is { Length: > 4 } && fileName.EndsWith(".dmg", StringComparison.Ordinal) ? 2 : 0;
}
