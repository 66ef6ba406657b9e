namespace Qimg.Formats.Qcow2;

/// <summary>
/// Host clusters whose refcount dropped to 0 in this session while the metadata that dropped their last reference may
/// not be in the file yet: the allocator must not hand them out (see the qcow2 README, "Reuse of freed clusters").
/// Kept as sorted, coalesced ranges of cluster indices with a fixed upper bound on their number.
/// </summary>
/// <remarks>
/// When the bound is reached, a new range is merged into its nearest neighbour, so that the set grows to cover the gap
/// between them. That only ever makes the allocator skip more clusters than it must (clusters in the gap are either in
/// use, and skipped anyway, or free and reused a little later), never fewer, so memory stays bounded without losing
/// safety. Not thread-safe: used under the image's metadata lock.
/// </remarks>
internal sealed class Qcow2FreedClusters
{
    /// <summary>At most this many ranges are kept (16 KiB).</summary>
    public const int MaxRanges = 1024;

    private readonly List<long> _starts = [];
    private readonly List<long> _ends = [];

    /// <summary>True when no cluster is waiting.</summary>
    public bool IsEmpty => _starts.Count == 0;

    /// <summary>Number of ranges (at most <see cref="MaxRanges"/>).</summary>
    public int RangeCount => _starts.Count;

    /// <summary>Clusters covered by the ranges (gaps merged over by the bound included).</summary>
    public long Clusters { get; private set; }

    /// <summary>The lowest cluster index in the set (the set must not be empty).</summary>
    public long Lowest => _starts[0];

    /// <summary>Adds cluster <paramref name="index"/>.</summary>
    public void Add(long index)
    {
        // Index of the first range starting after the cluster.
        int next = UpperBound(index);
        int previous = next - 1;
        if (previous >= 0 && index < _ends[previous])
        {
            return;
        }

        bool joinsPrevious = previous >= 0 && _ends[previous] == index;
        bool joinsNext = next < _starts.Count && _starts[next] == index + 1;
        if (joinsPrevious && joinsNext)
        {
            _ends[previous] = _ends[next];
            _starts.RemoveAt(next);
            _ends.RemoveAt(next);
            Clusters++;
        }
        else if (joinsPrevious)
        {
            _ends[previous] = index + 1;
            Clusters++;
        }
        else if (joinsNext)
        {
            _starts[next] = index;
            Clusters++;
        }
        else if (_starts.Count < MaxRanges)
        {
            _starts.Insert(next, index);
            _ends.Insert(next, index + 1);
            Clusters++;
        }
        else if (previous >= 0 && (next == _starts.Count || index - _ends[previous] <= _starts[next] - index))
        {
            // Full: widen the nearer neighbour over the gap.
            Clusters += index + 1 - _ends[previous];
            _ends[previous] = index + 1;
        }
        else
        {
            Clusters += _starts[next] - index;
            _starts[next] = index;
        }
    }

    /// <summary>
    /// Whether cluster <paramref name="index"/> is in the set; if so, <paramref name="end"/> is the first index past the
    /// range holding it.
    /// </summary>
    public bool Contains(long index, out long end)
    {
        int previous = UpperBound(index) - 1;
        if (previous >= 0 && index < _ends[previous])
        {
            end = _ends[previous];
            return true;
        }

        end = 0;
        return false;
    }

    /// <summary>Forgets every range.</summary>
    public void Clear()
    {
        _starts.Clear();
        _ends.Clear();
        Clusters = 0;
    }

    /// <summary>Index of the first range whose start is greater than <paramref name="index"/>.</summary>
    private int UpperBound(long index)
    {
        int low = 0;
        int high = _starts.Count;
        while (low < high)
        {
            int middle = (low + high) >>> 1;
            if (_starts[middle] <= index)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low;
    }
}
