using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>The qcow2 format (QEMU copy-on-write, version 2 and 3).</summary>
public sealed class Qcow2Driver : FormatDriver
{
    public static Qcow2Driver Instance { get; } = new();

    private Qcow2Driver()
    {
    }

    public override string Name => "qcow2";

    public override bool SupportsBacking => true;

    public override int Probe(ReadOnlySpan<byte> header, string? fileName) =>
        header.Length >= 8 && header[0] == 'Q' && header[1] == 'F' && header[2] == 'I' && header[3] == 0xfb ? 100 : 0;

    public override ValueTask<FormatNode> OpenAsync(BlockNode file, ImageOpenContext context, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("qcow2: not implemented yet");
}
