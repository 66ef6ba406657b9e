using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;

namespace Qimg.Copy;

/// <summary>What a run of the target gets: source data, zeroes, or nothing (the target's backing file shows through).</summary>
public enum CopySegmentKind
{
    Data,
    Zero,
    Backing,
}

/// <summary>
/// Turns the sources' block status into runs of <see cref="CopySegmentKind"/> (qemu-img's convert_iteration_sectors),
/// in 512-byte sectors. Not thread-safe: the engine calls it under its lock, in offset order.
/// </summary>
internal sealed class CopyPlanner
{
    private const int SectorSize = 512;

    // QEMU's BDRV_REQUEST_MAX_SECTORS: the largest block-status query.
    private const long MaxRequestSectors = (int.MaxValue & ~(SectorSize - 1)) / SectorSize;

    private readonly CopySource[] _sources;
    private readonly long[] _sourceSectors;
    private readonly int[] _sourceAlignment;
    private readonly CopyOptions _options;
    private readonly long _backingSectors;
    private readonly int _clusterSectors;
    private readonly int _bufferSectors;
    private long _nextStatusSector;

    public CopyPlanner(IReadOnlyList<CopySource> sources, CopyOptions options, int clusterSectors, int bufferSectors)
    {
        _sources = sources.ToArray();
        _options = options;
        _sourceSectors = new long[_sources.Length];
        _sourceAlignment = new int[_sources.Length];
        for (int i = 0; i < _sources.Length; i++)
        {
            BlockNode node = _sources[i].Node;
            _sourceSectors[i] = node.Length / SectorSize;
            int alignment = (Math.Max(1, node.Limits.RequestAlignment) + SectorSize - 1) / SectorSize;
            if (node is FormatNode format && format.ClusterSize > 0)
            {
                alignment = Math.Max(alignment, format.ClusterSize / SectorSize);
            }

            _sourceAlignment[i] = alignment;
            TotalSectors += _sourceSectors[i];
        }

        _backingSectors = options.TargetBackingLength >= 0 ? options.TargetBackingLength / SectorSize : -1;
        _clusterSectors = clusterSectors;
        _bufferSectors = bufferSectors;
    }

    public long TotalSectors { get; }

    /// <summary>The kind of the run found by the last <see cref="NextAsync"/>.</summary>
    public CopySegmentKind Kind { get; private set; }

    /// <summary>Forgets cached status so planning can start again from sector 0.</summary>
    public void Reset() => _nextStatusSector = 0;

    /// <summary>Which source holds <paramref name="sector"/>, and where that source starts.</summary>
    public (int Index, long StartSector) SelectSource(long sector)
    {
        int index = 0;
        long start = 0;
        while (sector - start >= _sourceSectors[index])
        {
            start += _sourceSectors[index];
            index++;
        }

        return (index, start);
    }

    public long SourceSectors(int index) => _sourceSectors[index];

    public BlockNode SourceNode(int index) => _sources[index].Node;

    /// <summary>The length in sectors of the next run starting at <paramref name="sector"/>; sets <see cref="Kind"/>.</summary>
    public async ValueTask<int> NextAsync(long sector, CancellationToken cancellationToken)
    {
        (int index, long sourceStart) = SelectSource(sector);
        long n = Math.Min(TotalSectors - sector, MaxRequestSectors);
        bool pastBacking = false;
        if (_backingSectors >= 0)
        {
            if (sector >= _backingSectors)
            {
                pastBacking = true;
            }
            else if (sector + n > _backingSectors)
            {
                // Zeroes are handled differently from there on: split the run.
                n = _backingSectors - sector;
            }
        }

        if (_nextStatusSector <= sector)
        {
            long offset = (sector - sourceStart) * SectorSize;
            CopySource source = _sources[index];
            BlockNode? statusBase = _options.TargetHasBacking ? source.StatusBase : null;
            BlockStatusFlags flags;
            long count;
            while (true)
            {
                try
                {
                    ChainBlockStatus status = await BackingChain.GetBlockStatusAboveAsync(
                        source.Node, statusBase, false, offset, n * SectorSize, wantZero: true, cancellationToken).ConfigureAwait(false);
                    flags = status.Status.Flags;
                    count = status.Status.Length;
                    break;
                }
                catch (Exception e) when (e is IOException or InvalidDataException)
                {
                    if (!_options.Salvage)
                    {
                        throw new CopyException($"error while reading block status at offset {offset}: {ErrorText.Describe(e)}", e);
                    }

                    if (n == 1)
                    {
                        _options.Warning?.Invoke($"error while reading block status at offset {offset}: {ErrorText.Describe(e)}");
                        // Try to read the data, then.
                        flags = BlockStatusFlags.Data;
                        count = SectorSize;
                        break;
                    }

                    n = (n + 3) / 4;
                }
            }

            n = (count + SectorSize - 1) / SectorSize;

            // Keep run boundaries on the source's alignment and cluster size, to avoid reading clusters twice.
            long tail = (sector - sourceStart + n) % _sourceAlignment[index];
            if (n > tail)
            {
                n -= tail;
            }

            if ((flags & BlockStatusFlags.Zero) != 0)
            {
                Kind = pastBacking ? CopySegmentKind.Backing : CopySegmentKind.Zero;
            }
            else if ((flags & BlockStatusFlags.Data) != 0)
            {
                Kind = CopySegmentKind.Data;
            }
            else
            {
                Kind = _options.TargetHasBacking ? CopySegmentKind.Backing : CopySegmentKind.Data;
            }

            _nextStatusSector = sector + n;
        }

        n = Math.Min(n, _nextStatusSector - sector);
        if (Kind == CopySegmentKind.Data)
        {
            n = Math.Min(n, _bufferSectors);
        }

        if (_options.Compressed)
        {
            // Compressed clusters are written whole: a short run makes its whole cluster data.
            if (n < _clusterSectors)
            {
                n = Math.Min(_clusterSectors, TotalSectors - sector);
                Kind = CopySegmentKind.Data;
            }
            else
            {
                n -= n % _clusterSectors;
            }
        }

        return (int)n;
    }
}
