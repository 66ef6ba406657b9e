using Qimg.Block;
using Qimg.Buffers;
using Qimg.Diagnostics;

namespace Qimg.Operations.Compare;

/// <summary>Options of <see cref="ImageComparer.CompareAsync"/>.</summary>
public sealed record CompareOptions
{
    /// <summary>Fail on different sizes or different block status, not just different content (<c>-s</c>).</summary>
    public bool Strict { get; init; }

    /// <summary>Names used in error messages (the file names as given).</summary>
    public string Name1 { get; init; } = "image 1";

    public string Name2 { get; init; } = "image 2";

    /// <summary>Reads in flight; 1 reads strictly one chunk after the other as qemu-img does.</summary>
    public int ReadAhead { get; init; } = 4;

    /// <summary>Progress as a percentage of the larger image.</summary>
    public IProgress<double>? Progress { get; init; }
}

/// <summary>
/// Compares the guest content of two images as qemu-img compare does: block status of both chains drives the walk
/// (ranges that read as zero on both sides are never read; a range allocated on one side only must read as zero
/// there), data is read in 2 MiB chunks and compared, and the first mismatch is reported at its 512-byte sector.
/// Unlike qemu-img, the next chunks are read while the current one is compared, on both images at once.
/// </summary>
public static class ImageComparer
{
    private const int ChunkSize = 2 << 20;
    private const int SectorSize = 512;

    private enum ChunkKind
    {
        Skip,
        CompareBoth,
        FirstMustBeZero,
        SecondMustBeZero,
    }

    private readonly record struct Chunk(long Offset, int Length, ChunkKind Kind);

    private sealed class ChunkWork(Chunk chunk, Task<(AlignedBuffer? First, AlignedBuffer? Second)> reads)
    {
        public Chunk Chunk { get; } = chunk;

        public Task<(AlignedBuffer? First, AlignedBuffer? Second)> Reads { get; } = reads;
    }

    /// <summary>Compares <paramref name="first"/> with <paramref name="second"/> (both with their backing chains).</summary>
    /// <exception cref="CompareException">Block status or a read failed (exit code 3 or 4).</exception>
    public static async Task<CompareResult> CompareAsync(BlockNode first, BlockNode second, CompareOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new CompareOptions();
        long size1 = first.Length;
        long size2 = second.Length;
        long common = Math.Min(size1, size2);
        long progressBase = Math.Max(Math.Max(size1, size2), 1);
        options.Progress?.Report(0);
        if (options.Strict && size1 != size2)
        {
            return new CompareResult(CompareOutcome.StrictSizeMismatch, -1, false);
        }

        long offset = 0;
        var pending = new Queue<ChunkWork>();
        int readAhead = Math.Max(1, options.ReadAhead);
        // Buffers are reused: fresh 2 MiB native buffers would cost a page fault per 4 KiB on every chunk.
        using var pool = new BufferPool(ChunkSize);
        try
        {
            while (offset < common || pending.Count > 0)
            {
                // Plan and start reads ahead of the comparison.
                while (offset < common && pending.Count < readAhead)
                {
                    BlockStatus status1 = await StatusAsync(first, offset, size1 - offset, options.Name1, cancellationToken).ConfigureAwait(false);
                    BlockStatus status2 = await StatusAsync(second, offset, size2 - offset, options.Name2, cancellationToken).ConfigureAwait(false);
                    long chunk = Math.Min(status1.Length, status2.Length);
                    if (options.Strict && status1.Flags != status2.Flags)
                    {
                        // Whatever was planned before this offset must still be compared first.
                        CompareResult? earlier = await DrainAsync(pending, options, progressBase, pool).ConfigureAwait(false);
                        return earlier ?? new CompareResult(CompareOutcome.StrictBlockStatusMismatch, offset, false);
                    }

                    ChunkKind kind;
                    if (status1.IsZero && status2.IsZero)
                    {
                        kind = ChunkKind.Skip;
                    }
                    else if (status1.IsAllocated == status2.IsAllocated)
                    {
                        kind = status1.IsAllocated ? ChunkKind.CompareBoth : ChunkKind.Skip;
                    }
                    else
                    {
                        kind = status1.IsAllocated ? ChunkKind.FirstMustBeZero : ChunkKind.SecondMustBeZero;
                    }

                    if (kind != ChunkKind.Skip)
                    {
                        chunk = Math.Min(chunk, ChunkSize);
                    }

                    var planned = new Chunk(offset, (int)Math.Min(chunk, int.MaxValue), kind);
                    pending.Enqueue(new ChunkWork(planned, StartReads(planned, first, second, options, pool, cancellationToken)));
                    offset += chunk;
                }

                CompareResult? result = await CompareNextAsync(pending.Dequeue(), options, progressBase, pool).ConfigureAwait(false);
                if (result is not null)
                {
                    await AbandonAsync(pending, pool).ConfigureAwait(false);
                    return result;
                }
            }
        }
        catch
        {
            await AbandonAsync(pending, pool).ConfigureAwait(false);
            throw;
        }

        if (size1 == size2)
        {
            return new CompareResult(CompareOutcome.Identical, -1, false);
        }

        // The longer image's tail must read as zero.
        BlockNode over = size1 > size2 ? first : second;
        string overName = size1 > size2 ? options.Name1 : options.Name2;
        AlignedBuffer buffer = pool.Rent();
        while (offset < progressBase)
        {
            BlockStatus status = await StatusAsync(over, offset, progressBase - offset, overName, cancellationToken).ConfigureAwait(false);
            long chunk = status.Length;
            if (status.IsAllocated && !status.IsZero)
            {
                chunk = Math.Min(chunk, ChunkSize);
                long nonZero = await ReadNonZeroAsync(over, offset, (int)chunk, buffer, overName, cancellationToken).ConfigureAwait(false);
                if (nonZero >= 0)
                {
                    return new CompareResult(CompareOutcome.ContentMismatch, offset + nonZero, true);
                }
            }

            offset += chunk;
            options.Progress?.Report(100.0 * offset / progressBase);
        }

        return new CompareResult(CompareOutcome.Identical, -1, true);
    }

    private static async Task<CompareResult?> DrainAsync(Queue<ChunkWork> pending, CompareOptions options, long progressBase, BufferPool pool)
    {
        while (pending.Count > 0)
        {
            CompareResult? result = await CompareNextAsync(pending.Dequeue(), options, progressBase, pool).ConfigureAwait(false);
            if (result is not null)
            {
                await AbandonAsync(pending, pool).ConfigureAwait(false);
                return result;
            }
        }

        return null;
    }

    private static async Task<CompareResult?> CompareNextAsync(ChunkWork work, CompareOptions options, long progressBase, BufferPool pool)
    {
        (AlignedBuffer? buffer1, AlignedBuffer? buffer2) = await work.Reads.ConfigureAwait(false);
        try
        {
            Chunk chunk = work.Chunk;
            switch (chunk.Kind)
            {
                case ChunkKind.CompareBoth:
                    long differs = FirstDifference(buffer1!.Memory.Span[..chunk.Length], buffer2!.Memory.Span[..chunk.Length]);
                    if (differs >= 0)
                    {
                        return new CompareResult(CompareOutcome.ContentMismatch, chunk.Offset + differs, false);
                    }

                    break;
                case ChunkKind.FirstMustBeZero:
                case ChunkKind.SecondMustBeZero:
                    long nonZero = FirstNonZeroSector(buffer1!.Memory.Span[..chunk.Length]);
                    if (nonZero >= 0)
                    {
                        return new CompareResult(CompareOutcome.ContentMismatch, chunk.Offset + nonZero, false);
                    }

                    break;
            }

            options.Progress?.Report(100.0 * (chunk.Offset + chunk.Length) / progressBase);
            return null;
        }
        finally
        {
            pool.Return(buffer1);
            pool.Return(buffer2);
        }
    }

    private static Task<(AlignedBuffer? First, AlignedBuffer? Second)> StartReads(Chunk chunk, BlockNode first, BlockNode second, CompareOptions options, BufferPool pool, CancellationToken cancellationToken)
    {
        return chunk.Kind switch
        {
            ChunkKind.Skip => Task.FromResult<(AlignedBuffer?, AlignedBuffer?)>((null, null)),
            ChunkKind.CompareBoth => ReadBothAsync(chunk, first, second, options, pool, cancellationToken),
            ChunkKind.FirstMustBeZero => Task.Run(() => ReadOneAsync(chunk, first, options.Name1, pool, cancellationToken), cancellationToken),
            _ => Task.Run(() => ReadOneAsync(chunk, second, options.Name2, pool, cancellationToken), cancellationToken),
        };
    }

    private static async Task<(AlignedBuffer? First, AlignedBuffer? Second)> ReadBothAsync(Chunk chunk, BlockNode first, BlockNode second, CompareOptions options, BufferPool pool, CancellationToken cancellationToken)
    {
        Task<(AlignedBuffer?, AlignedBuffer?)> one = Task.Run(() => ReadOneAsync(chunk, first, options.Name1, pool, cancellationToken), cancellationToken);
        Task<(AlignedBuffer?, AlignedBuffer?)> two = Task.Run(() => ReadOneAsync(chunk, second, options.Name2, pool, cancellationToken), cancellationToken);
        try
        {
            await Task.WhenAll(one, two).ConfigureAwait(false);
        }
        catch
        {
            // Report the first image's error first, as qemu-img reads it first; free whatever was read.
            if (one.IsCompletedSuccessfully)
            {
                pool.Return(one.Result.Item1);
            }

            if (two.IsCompletedSuccessfully)
            {
                pool.Return(two.Result.Item1);
            }

            if (one.IsFaulted)
            {
                await one.ConfigureAwait(false);
            }

            throw;
        }

        return (one.Result.Item1, two.Result.Item1);
    }

    private static async Task<(AlignedBuffer? First, AlignedBuffer? Second)> ReadOneAsync(Chunk chunk, BlockNode node, string name, BufferPool pool, CancellationToken cancellationToken)
    {
        AlignedBuffer buffer = pool.Rent();
        try
        {
            await node.ReadAsync(chunk.Offset, buffer.Memory[..chunk.Length], cancellationToken).ConfigureAwait(false);
            return (buffer, null);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            pool.Return(buffer);
            throw new CompareException($"Error while reading offset {chunk.Offset} of {name}: {ErrorText.Describe(e)}", 4, e);
        }
        catch
        {
            pool.Return(buffer);
            throw;
        }
    }

    private static async Task<long> ReadNonZeroAsync(BlockNode node, long offset, int length, AlignedBuffer buffer, string name, CancellationToken cancellationToken)
    {
        try
        {
            await node.ReadAsync(offset, buffer.Memory[..length], cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new CompareException($"Error while reading offset {offset} of {name}: {ErrorText.Describe(e)}", 4, e);
        }

        return FirstNonZeroSector(buffer.Memory.Span[..length]);
    }

    private static async ValueTask<BlockStatus> StatusAsync(BlockNode node, long offset, long length, string name, CancellationToken cancellationToken)
    {
        try
        {
            ChainBlockStatus status = await BackingChain.GetBlockStatusAboveAsync(node, null, false, offset, length, wantZero: true, cancellationToken).ConfigureAwait(false);
            return status.Status;
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new CompareException($"Sector allocation test failed for {name}", 3, e);
        }
    }

    private static async Task AbandonAsync(Queue<ChunkWork> pending, BufferPool pool)
    {
        while (pending.Count > 0)
        {
            ChunkWork work = pending.Dequeue();
            try
            {
                (AlignedBuffer? one, AlignedBuffer? two) = await work.Reads.ConfigureAwait(false);
                pool.Return(one);
                pool.Return(two);
            }
            catch (Exception)
            {
                // A read that fails after the answer is known does not change it.
            }
        }
    }

    /// <summary>Offset of the first 512-byte sector that differs (qemu-img's compare_buffers), or -1.</summary>
    internal static long FirstDifference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        int index = a.CommonPrefixLength(b);
        return index >= a.Length ? -1 : index / SectorSize * SectorSize;
    }

    /// <summary>Offset of the first 512-byte sector that is not all zero (qemu-img's find_nonzero), or -1.</summary>
    internal static long FirstNonZeroSector(ReadOnlySpan<byte> buffer)
    {
        int index = buffer.IndexOfAnyExcept((byte)0);
        return index < 0 ? -1 : index / SectorSize * SectorSize;
    }

    /// <summary>Reusable aligned buffers for one comparison; disposing frees them all.</summary>
    private sealed class BufferPool(int size) : IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentBag<AlignedBuffer> _free = [];
        private readonly System.Collections.Concurrent.ConcurrentBag<AlignedBuffer> _all = [];

        public AlignedBuffer Rent()
        {
            if (_free.TryTake(out AlignedBuffer? buffer))
            {
                return buffer;
            }

            buffer = new AlignedBuffer(size, 4096);
            _all.Add(buffer);
            return buffer;
        }

        public void Return(AlignedBuffer? buffer)
        {
            if (buffer is not null)
            {
                _free.Add(buffer);
            }
        }

        public void Dispose()
        {
            foreach (AlignedBuffer buffer in _all)
            {
                buffer.Dispose();
            }
        }
    }
}
