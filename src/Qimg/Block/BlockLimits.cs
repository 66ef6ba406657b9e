namespace Qimg.Block;

/// <summary>
/// What a node requires of requests and buffers. The generic request layer in <see cref="BlockNode"/>
/// enforces these, so drivers only ever see requests that satisfy them.
/// </summary>
/// <param name="RequestAlignment">Offsets and lengths passed to the driver are multiples of this (1 = byte-granular).</param>
/// <param name="MaxTransfer">Largest single read or write passed to the driver, in bytes (a multiple of the alignment).</param>
/// <param name="MemoryAlignment">Required alignment of buffer addresses (O_DIRECT); 1 when any buffer will do.</param>
/// <param name="OptimalTransfer">Preferred request size for bulk copies (a cluster, for example); 0 when the node has no preference.</param>
public readonly record struct BlockLimits(int RequestAlignment, int MaxTransfer, int MemoryAlignment, int OptimalTransfer)
{
    /// <summary>Byte-granular, 32 MiB transfers, any buffer.</summary>
    public static BlockLimits Default { get; } = new(1, 32 << 20, 1, 0);
}
