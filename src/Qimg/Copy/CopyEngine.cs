using Qimg.Block;
using Qimg.Buffers;
using Qimg.Diagnostics;
using Qimg.Formats;

namespace Qimg.Copy;

/// <summary>
/// Copies one or more sources, concatenated, into a target (the engine of qemu-img convert). Block status drives the
/// copy: unallocated and zero ranges are never read as data; data is zero-scanned so the target stays sparse; several
/// requests run at once (<see cref="CopyOptions.Workers"/>), with writes kept in offset order unless told otherwise.
/// </summary>
/// <remarks>
/// Memory is bounded by Workers × BufferSize (2 MiB by default): nothing scales with the image size.
/// Compressed copies compress on the worker threads (inside the target's write), so they use every core.
/// </remarks>
public sealed class CopyEngine
{
    private const int SectorSize = 512;

    // QEMU's MAX_BUF_SECTORS: 16 MiB requests at most.
    private const int MaxBufferSize = 16 << 20;

    private readonly CopyPlanner _planner;
    private readonly BlockNode _target;
    private readonly CopyOptions _options;
    private readonly int _bufferSectors;
    private readonly int _clusterSectors;
    private readonly int _alignmentSectors;
    private readonly bool _compressed;
    private readonly SemaphoreSlim _planLock = new(1, 1);
    private readonly object _orderLock = new();
    private readonly Dictionary<long, TaskCompletionSource> _orderWaiters = [];
    private readonly RateLimiter? _rateLimiter;
    private long _nextSector;
    private long _writtenUpTo;
    private long _allocatedSectors;
    private long _allocatedDone;
    private Exception? _failure;

    private CopyEngine(IReadOnlyList<CopySource> sources, BlockNode target, CopyOptions options)
    {
        if (sources.Count == 0)
        {
            throw new ArgumentException("At least one source is needed.", nameof(sources));
        }

        if (options.Workers is < 1 or > CopyOptions.MaxWorkers)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"Workers must be between 1 and {CopyOptions.MaxWorkers}.");
        }

        if (options.MinSparse < 0 || options.MinSparse % SectorSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "MinSparse must be a non-negative multiple of 512.");
        }

        _target = target;
        _options = options;
        FormatNode? targetFormat = target as FormatNode;
        _compressed = options.Compressed || targetFormat?.NeedsCompressedWrites == true;
        int clusterSize = targetFormat?.ClusterSize ?? 0;
        _clusterSectors = clusterSize / SectorSize;

        BlockLimits limits = target.Limits;
        int bufferSize = Math.Min(MaxBufferSize, Math.Max(options.BufferSize, limits.OptimalTransfer));
        if (_compressed)
        {
            if (_clusterSectors <= 0 || clusterSize > bufferSize)
            {
                throw new CopyException("invalid cluster size");
            }

            // One cluster per request: each is compressed on its own.
            bufferSize = clusterSize;
        }

        _bufferSectors = bufferSize / SectorSize;
        int minSparseSectors = options.MinSparse / SectorSize;
        // Align the ends of data writes to avoid read-modify-write in the target.
        _alignmentSectors = Math.Max(
            minSparseSectors == 0 ? 1 : 1 << (31 - int.LeadingZeroCount(minSparseSectors)),
            (Math.Max(1, limits.RequestAlignment) + SectorSize - 1) / SectorSize);
        _planner = new CopyPlanner(sources, options, _clusterSectors, _bufferSectors);
        if (target.Length < _planner.TotalSectors * SectorSize)
        {
            throw new CopyException("output file is smaller than input file");
        }

        _rateLimiter = options.RateLimit > 0 ? new RateLimiter(options.RateLimit) : null;
    }

    /// <summary>Copies <paramref name="sources"/> (concatenated) into <paramref name="target"/>.</summary>
    /// <exception cref="CopyException">A read, write or block-status query failed (message in qemu-img's words).</exception>
    public static async Task CopyAsync(IReadOnlyList<CopySource> sources, BlockNode target, CopyOptions options, CancellationToken cancellationToken = default)
    {
        var engine = new CopyEngine(sources, target, options);
        await engine.RunAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        // A first pass over the block status sizes the progress bar (only data is counted), as qemu-img does.
        if (_options.Progress is not null)
        {
            long sector = 0;
            while (sector < _planner.TotalSectors)
            {
                int n = await _planner.NextAsync(sector, cancellationToken).ConfigureAwait(false);
                if (CountsAsData(_planner.Kind))
                {
                    _allocatedSectors += n;
                }

                sector += n;
            }

            // No report of 0 here: the work done so far is none, and qemu-img prints its 0 % line before the images
            // are opened (the CLI does the same); a second one would be a line qemu-img does not print.
            _planner.Reset();
        }

        var workers = new Task[_options.Workers];
        for (int i = 0; i < workers.Length; i++)
        {
            workers[i] = Task.Run(() => WorkerAsync(cancellationToken), cancellationToken);
        }

        try
        {
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
        catch when (_failure is not null)
        {
            // The first failure is what the user needs to see, not the cancellations it caused.
        }

        if (_failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_failure);
        }

        if (_compressed && _target is FormatNode format)
        {
            await format.CompleteCompressedWritesAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private bool CountsAsData(CopySegmentKind kind) =>
        kind == CopySegmentKind.Data || (_options.MinSparse == 0 && kind == CopySegmentKind.Zero);

    private async Task WorkerAsync(CancellationToken cancellationToken)
    {
        using var buffer = new AlignedBuffer(_bufferSectors * SectorSize, Math.Max(4096, _target.Limits.MemoryAlignment));
        while (true)
        {
            long sector;
            int n;
            CopySegmentKind kind;
            await _planLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (Volatile.Read(ref _failure) is not null || _nextSector >= _planner.TotalSectors)
                {
                    return;
                }

                n = await _planner.NextAsync(_nextSector, cancellationToken).ConfigureAwait(false);
                sector = _nextSector;
                kind = _planner.Kind;
                if (_options.MinSparse == 0 && kind == CopySegmentKind.Zero)
                {
                    n = Math.Min(n, _bufferSectors);
                }

                // Let the other workers plan beyond this request while it is read and written.
                _nextSector += n;

                // Progress counts a request when it is claimed, in guest order, as qemu-img does.
                if (CountsAsData(kind))
                {
                    _allocatedDone += n;
                    if (_allocatedSectors > 0)
                    {
                        ReportProgress(100.0 * _allocatedDone / _allocatedSectors);
                    }
                }
            }
            catch (Exception e)
            {
                Fail(e);
                return;
            }
            finally
            {
                _planLock.Release();
            }

            try
            {
                await CopyRunAsync(sector, n, kind, buffer.Memory, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Fail(e);
                return;
            }
        }
    }

    private async Task CopyRunAsync(long sector, int n, CopySegmentKind kind, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int length = kind == CopySegmentKind.Data || _options.MinSparse == 0 ? n * SectorSize : 0;
        bool offloaded = false;
        if (kind == CopySegmentKind.Data && _options.CopyOffload)
        {
            await WaitForTurnAsync(sector, cancellationToken).ConfigureAwait(false);
            offloaded = await TryCopyOffloadAsync(sector, n, cancellationToken).ConfigureAwait(false);
            if (offloaded)
            {
                FinishTurn(sector + n);
                return;
            }
        }

        if (kind == CopySegmentKind.Data)
        {
            await ReadAsync(sector, buffer[..length], cancellationToken).ConfigureAwait(false);
        }
        else if (_options.MinSparse == 0 && kind == CopySegmentKind.Zero)
        {
            // -S 0: zeroes are written as data.
            buffer.Span[..length].Clear();
            kind = CopySegmentKind.Data;
        }

        // Compressing does not depend on the other requests: do it before waiting for this request's turn, so that
        // every worker compresses in parallel while allocation and writing stay in guest order.
        PreparedWrite? prepared = null;
        if (_compressed && kind == CopySegmentKind.Data && (_options.MinSparse == 0 || !ZeroDetector.IsZero(buffer.Span[..length])))
        {
            prepared = await PrepareAsync(sector, buffer[..length], cancellationToken).ConfigureAwait(false);
        }

        try
        {
            if (!(_options.CopyOffload && kind == CopySegmentKind.Data))
            {
                await WaitForTurnAsync(sector, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                if (Volatile.Read(ref _failure) is null)
                {
                    if (prepared is not null)
                    {
                        await CommitAsync(sector, length, prepared, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await WriteAsync(sector, n, kind == CopySegmentKind.Data ? buffer[..length] : default, kind, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            finally
            {
                FinishTurn(sector + n);
            }
        }
        finally
        {
            prepared?.Dispose();
        }
    }

    /// <summary>Reads sectors that may span several sources; with salvage, unreadable sectors become zeroes.</summary>
    private async ValueTask ReadAsync(long sector, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int sectors = buffer.Length / SectorSize;
        long singleReadUntil = 0;
        while (sectors > 0)
        {
            (int index, long sourceStart) = _planner.SelectSource(sector);
            BlockNode source = _planner.SourceNode(index);
            long offset = (sector - sourceStart) * SectorSize;
            int n = (int)Math.Min(sectors, _planner.SourceSectors(index) - (sector - sourceStart));
            if (singleReadUntil > offset)
            {
                n = 1;
            }

            Memory<byte> part = buffer[..(n * SectorSize)];
            try
            {
                await source.ReadAsync(offset, part, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                if (!_options.Salvage)
                {
                    throw new CopyException($"error while reading at byte {sector * SectorSize}: {ErrorText.Describe(e)}", e);
                }

                if (n > 1)
                {
                    // Find the bad sectors one by one.
                    singleReadUntil = offset + (long)n * SectorSize;
                    continue;
                }

                _options.Warning?.Invoke($"error while reading offset {offset}: {ErrorText.Describe(e)}");
                part.Span.Clear();
            }

            sector += n;
            sectors -= n;
            buffer = buffer[(n * SectorSize)..];
        }
    }

    private async ValueTask WriteAsync(long sector, int sectors, ReadOnlyMemory<byte> buffer, CopySegmentKind kind, CancellationToken cancellationToken)
    {
        int minSparseSectors = _options.MinSparse / SectorSize;
        WriteFlags flags = _compressed ? WriteFlags.Compressed : WriteFlags.None;
        try
        {
            while (sectors > 0)
            {
                int n = sectors;
                bool writeData = false;
                if (kind == CopySegmentKind.Backing)
                {
                    // Leave it unallocated: the target's backing file shows through.
                }
                else if (kind == CopySegmentKind.Data)
                {
                    // Write real data (or everything, with -S 0); runs of zeroes become zero writes or nothing.
                    if (minSparseSectors == 0)
                    {
                        writeData = true;
                    }
                    else if (_compressed)
                    {
                        writeData = !ZeroDetector.IsZero(buffer.Span[..(n * SectorSize)]);
                    }
                    else
                    {
                        writeData = ZeroDetector.IsAllocatedSectorsMin(buffer.Span, n, out n, minSparseSectors, sector, _alignmentSectors);
                    }
                }

                if (writeData)
                {
                    int length = n * SectorSize;
                    if (_rateLimiter is not null)
                    {
                        await _rateLimiter.WaitAsync(length, cancellationToken).ConfigureAwait(false);
                    }

                    await _target.WriteAsync(sector * SectorSize, buffer[..length], flags, cancellationToken).ConfigureAwait(false);
                }
                else if (kind != CopySegmentKind.Backing && !_options.TargetIsZero)
                {
                    await _target.WriteZeroesAsync(sector * SectorSize, (long)n * SectorSize, ZeroFlags.MayUnmap, cancellationToken).ConfigureAwait(false);
                }

                sector += n;
                sectors -= n;
                if (kind == CopySegmentKind.Data)
                {
                    buffer = buffer[(n * SectorSize)..];
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            throw new CopyException($"error while writing at byte {sector * SectorSize}: {ErrorText.Describe(e)}", e);
        }
    }

    private async ValueTask<PreparedWrite?> PrepareAsync(long sector, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        try
        {
            return await _target.PrepareWriteAsync(sector * SectorSize, data, WriteFlags.Compressed, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            throw new CopyException($"error while writing at byte {sector * SectorSize}: {ErrorText.Describe(e)}", e);
        }
    }

    private async ValueTask CommitAsync(long sector, int length, PreparedWrite prepared, CancellationToken cancellationToken)
    {
        try
        {
            if (_rateLimiter is not null)
            {
                await _rateLimiter.WaitAsync(length, cancellationToken).ConfigureAwait(false);
            }

            await prepared.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            throw new CopyException($"error while writing at byte {sector * SectorSize}: {ErrorText.Describe(e)}", e);
        }
    }

    private ValueTask<bool> TryCopyOffloadAsync(long sector, int sectors, CancellationToken cancellationToken)
    {
        (int index, long sourceStart) = _planner.SelectSource(sector);
        if (sector + sectors > sourceStart + _planner.SourceSectors(index))
        {
            return ValueTask.FromResult(false);
        }

        return CopyOffload.TryCopyAsync(_planner.SourceNode(index), (sector - sourceStart) * SectorSize, _target, sector * SectorSize, (long)sectors * SectorSize, cancellationToken);
    }

    private Task WaitForTurnAsync(long sector, CancellationToken cancellationToken)
    {
        if (!_options.WriteInOrder)
        {
            return Task.CompletedTask;
        }

        lock (_orderLock)
        {
            if (_writtenUpTo == sector || _failure is not null)
            {
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _orderWaiters[sector] = waiter;
            return waiter.Task.WaitAsync(cancellationToken);
        }
    }

    private void FinishTurn(long nextSector)
    {
        if (!_options.WriteInOrder)
        {
            return;
        }

        TaskCompletionSource? next;
        lock (_orderLock)
        {
            _writtenUpTo = nextSector;
            _orderWaiters.Remove(nextSector, out next);
        }

        next?.TrySetResult();
    }

    private void Fail(Exception exception)
    {
        Interlocked.CompareExchange(ref _failure, exception, null);
        TaskCompletionSource[] waiters;
        lock (_orderLock)
        {
            waiters = [.. _orderWaiters.Values];
            _orderWaiters.Clear();
        }

        foreach (TaskCompletionSource waiter in waiters)
        {
            waiter.TrySetResult();
        }
    }

    private void ReportProgress(double percent)
    {
        // Called under the plan lock, in claim order, once per data request: the sink sees the values qemu-img's
        // progress code sees, and filters them as it likes (the CLI prints steps of 1 %, as qemu-img does).
        _options.Progress?.Report(percent);
    }

    /// <summary>A byte-rate limit shared by all workers (QEMU throttles the target to -r bytes per second).</summary>
    private sealed class RateLimiter
    {
        private readonly long _bytesPerSecond;
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        private long _bytes;

        public RateLimiter(long bytesPerSecond) => _bytesPerSecond = bytesPerSecond;

        public Task WaitAsync(int length, CancellationToken cancellationToken)
        {
            long total = Interlocked.Add(ref _bytes, length) - length;
            TimeSpan due = TimeSpan.FromSeconds((double)total / _bytesPerSecond);
            TimeSpan wait = due - _clock.Elapsed;
            return wait > TimeSpan.Zero ? Task.Delay(wait, cancellationToken) : Task.CompletedTask;
        }
    }
}
