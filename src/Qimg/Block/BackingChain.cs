namespace Qimg.Block;

/// <summary>A block-status answer for a backing chain, with the layer that answered.</summary>
/// <param name="Status">The status of the answering layer (Allocated set when some layer defines the content).</param>
/// <param name="Depth">1 for the top node, 2 for its backing file, and so on (QEMU's depth counting).</param>
/// <param name="Layer">The node whose layer answered, or null when no layer down to the base is allocated.</param>
public readonly record struct ChainBlockStatus(BlockStatus Status, int Depth, BlockNode? Layer);

/// <summary>Walks and queries backing chains (QEMU's <c>bdrv_*_above</c> helpers).</summary>
public static class BackingChain
{
    /// <summary>The nodes of the chain from <paramref name="top"/> down, each format node once.</summary>
    public static IEnumerable<BlockNode> Layers(BlockNode top)
    {
        for (BlockNode? node = top; node is not null; node = node.Backing)
        {
            yield return node;
        }
    }

    /// <summary>
    /// The status of the first layer from <paramref name="top"/> down that defines the range (QEMU's
    /// <c>bdrv_co_common_block_status_above</c>). The walk stops above <paramref name="baseNode"/>, or at it when
    /// <paramref name="includeBase"/> is set; a null base means the whole chain. A layer shorter than the range
    /// makes the part past its end read as zero, allocated at that layer.
    /// </summary>
    public static async ValueTask<ChainBlockStatus> GetBlockStatusAboveAsync(
        BlockNode top,
        BlockNode? baseNode,
        bool includeBase,
        long offset,
        long length,
        bool wantZero = true,
        CancellationToken cancellationToken = default)
    {
        if (includeBase && baseNode is null)
        {
            throw new ArgumentException("A null base cannot be included.", nameof(includeBase));
        }

        if (!includeBase && ReferenceEquals(top, baseNode))
        {
            return new ChainBlockStatus(new BlockStatus(BlockStatusFlags.None, length), 0, null);
        }

        BlockStatus status = await top.GetBlockStatusAsync(offset, length, wantZero, cancellationToken).ConfigureAwait(false);
        int depth = 1;
        if (status.Length == 0 || status.IsAllocated || ReferenceEquals(top, baseNode))
        {
            return new ChainBlockStatus(status, depth, status.IsAllocated ? top : null);
        }

        long eof = status.IsEof ? offset + status.Length : -1;
        length = status.Length;
        BlockNode? answered = null;
        for (BlockNode? layer = top.Backing; layer is not null && (includeBase || !ReferenceEquals(layer, baseNode)); layer = layer.Backing)
        {
            status = await layer.GetBlockStatusAsync(offset, length, wantZero, cancellationToken).ConfigureAwait(false);
            depth++;
            if (status.Length == 0)
            {
                // This layer ends before the range: past its end the chain reads as zero, decided here.
                status = new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, length);
                answered = layer;
                break;
            }

            if (status.IsAllocated)
            {
                status = status with { Flags = status.Flags & ~BlockStatusFlags.Eof };
                answered = layer;
                break;
            }

            if (ReferenceEquals(layer, baseNode))
            {
                break;
            }

            length = status.Length;
        }

        if (offset + status.Length == eof)
        {
            status = status with { Flags = status.Flags | BlockStatusFlags.Eof };
        }

        return new ChainBlockStatus(status, depth, answered);
    }

    /// <summary>
    /// Whether the range starting at <paramref name="offset"/> is allocated in some layer from <paramref name="top"/>
    /// down to (not including) <paramref name="baseNode"/>, and for how many bytes that answer holds (QEMU's
    /// <c>bdrv_is_allocated_above</c>).
    /// </summary>
    public static async ValueTask<(bool Allocated, long Length)> IsAllocatedAboveAsync(
        BlockNode top, BlockNode? baseNode, long offset, long length, CancellationToken cancellationToken = default)
    {
        ChainBlockStatus answer = await GetBlockStatusAboveAsync(top, baseNode, false, offset, length, wantZero: false, cancellationToken).ConfigureAwait(false);
        return (answer.Status.IsAllocated, answer.Status.Length);
    }
}
