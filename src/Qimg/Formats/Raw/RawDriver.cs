using Qimg.Block;
using Qimg.Options;

namespace Qimg.Formats.Raw;

/// <summary>The raw format: guest bytes are file bytes.</summary>
public sealed class RawDriver : FormatDriver
{
    public static RawDriver Instance { get; } = new();

    private RawDriver()
    {
    }

    public override string Name => "raw";

    public override bool SupportsCreate => true;

    public override IReadOnlyList<OptionDescriptor> CreateOptions { get; } =
    [
        new("size", OptionType.Size, "Virtual disk size"),
    ];

    /// <summary>Raw matches anything, with the lowest score, so that any real format wins.</summary>
    public override int Probe(ReadOnlySpan<byte> header, string? fileName) => 1;

    public override ValueTask<FormatNode> OpenAsync(BlockNode file, ImageOpenContext context, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<FormatNode>(new RawImage(file, context.ReadOnly, context.Probed));

    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken = default) =>
        request.Protocol.CreateAsync(request.FileName, request.Size, request.Options, cancellationToken);
}
