using System.Runtime.CompilerServices;
using Qimg.Block;
using Qimg.Formats;

namespace Qimg.Operations.Map;

/// <summary>
/// The extents of an image as <c>qemu-img map</c> lists them: for each range, the first layer of the backing chain
/// whose block status says data or zero (QEMU's <c>get_block_status</c> in qemu-img.c), merged with the previous extent
/// when nothing but the length differs.
/// </summary>
public static class ImageMapper
{
    /// <summary>
    /// Lists the extents of <paramref name="image"/> (opened with its backing chain) from <paramref name="start"/> to
    /// its end, or to <paramref name="start"/> + <paramref name="maxLength"/>. Streams: each extent is yielded as soon as
    /// the next one shows it is complete.
    /// </summary>
    /// <param name="image">The image, with its backing chain attached.</param>
    /// <param name="start">The first guest offset.</param>
    /// <param name="maxLength">How far to go, or null for the whole image.</param>
    /// <param name="humanMerging">
    /// Merge as the human output does: after an extent, any following extent that is not plain data counts as
    /// "zero, no data", so that unmapped, zero and zero-with-data ranges (which the human format does not list) merge.
    /// </param>
    /// <exception cref="IOException">Block status failed.</exception>
    public static async IAsyncEnumerable<MapEntry> GetExtentsAsync(
        FormatNode image, long start, long? maxLength, bool humanMerging, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        long length = image.Length;
        if (maxLength is long max)
        {
            // Overflow behaves as in qemu-img (signed wrap-around, then MIN).
            length = Math.Min(unchecked(start + max), length);
        }

        MapEntry? current = null;
        long position = start;
        while (position < length)
        {
            MapEntry next = await GetStatusAsync(image, position, length - position, cancellationToken).ConfigureAwait(false);
            position += next.Length;
            if (current is MapEntry curr && curr.CanMerge(next))
            {
                current = curr with { Length = curr.Length + next.Length };
                continue;
            }

            if (current is MapEntry done)
            {
                yield return done;
                if (humanMerging && (!next.Data || next.Zero))
                {
                    next = next with { Data = false, Zero = true };
                }
            }

            current = next;
        }

        if (current is MapEntry last)
        {
            yield return last with { IsLast = true };
        }
    }

    /// <summary>The status of the range at <paramref name="offset"/>: the first layer, top down, that reports data or zero.</summary>
    private static async ValueTask<MapEntry> GetStatusAsync(FormatNode image, long offset, long bytes, CancellationToken cancellationToken)
    {
        BlockNode? node = image;
        int depth = 0;
        BlockStatus status;
        while (true)
        {
            status = await node.GetBlockStatusAsync(offset, bytes, wantZero: true, cancellationToken).ConfigureAwait(false);
            if (status.Length <= 0)
            {
                // This layer ends before the range: the chain reads as zeroes here.
                status = new BlockStatus(BlockStatusFlags.Zero, bytes);
                break;
            }

            bytes = status.Length;
            if ((status.Flags & (BlockStatusFlags.Zero | BlockStatusFlags.Data)) != 0)
            {
                break;
            }

            node = node.Backing;
            if (node is null)
            {
                status = new BlockStatus(BlockStatusFlags.None, bytes);
                break;
            }

            depth++;
        }

        bool hasOffset = status.IsOffsetValid;
        return new MapEntry(
            offset,
            bytes,
            status.IsData,
            status.IsZero,
            depth,
            status.IsAllocated,
            hasOffset ? status.HostOffset : null,
            hasOffset ? status.HostNode?.FileName : null);
    }
}
