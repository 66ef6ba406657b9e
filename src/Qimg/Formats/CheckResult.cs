namespace Qimg.Formats;

/// <summary>
/// What a metadata check found and repaired (QEMU's <c>BdrvCheckResult</c> with its <c>BlockFragInfo</c>): counters only.
/// The check describes each problem, as it finds it, through its <see cref="CheckMessage"/> sink.
/// </summary>
public sealed class CheckResult
{
    /// <summary>Inconsistencies that can corrupt data (or did), still present after any repair.</summary>
    public long Corruptions { get; internal set; }

    /// <summary>Clusters whose refcount is higher than their references (wasted space), still present after any repair.</summary>
    public long Leaks { get; internal set; }

    /// <summary>Problems that kept the check from looking at everything (I/O errors, allocation failures).</summary>
    public long CheckErrors { get; internal set; }

    /// <summary>Corruptions repaired by this check.</summary>
    public long CorruptionsFixed { get; internal set; }

    /// <summary>Leaks repaired by this check.</summary>
    public long LeaksFixed { get; internal set; }

    /// <summary>Offset just past the last cluster in use (0 when the format does not say).</summary>
    public long ImageEndOffset { get; internal set; }

    /// <summary>Clusters needed to hold the whole virtual disk.</summary>
    public long TotalClusters { get; internal set; }

    /// <summary>Guest clusters with host storage (data, preallocated zero, compressed).</summary>
    public long AllocatedClusters { get; internal set; }

    /// <summary>Allocated guest clusters not stored right after the guest cluster before them.</summary>
    public long FragmentedClusters { get; internal set; }

    /// <summary>Compressed guest clusters.</summary>
    public long CompressedClusters { get; internal set; }

    /// <summary>Adds the problem counters of <paramref name="other"/> (QEMU's qcow2_add_check_result).</summary>
    internal void Add(CheckResult other, bool withAllocationInfo)
    {
        Corruptions += other.Corruptions;
        Leaks += other.Leaks;
        CheckErrors += other.CheckErrors;
        CorruptionsFixed += other.CorruptionsFixed;
        LeaksFixed += other.LeaksFixed;
        if (withAllocationInfo)
        {
            ImageEndOffset = other.ImageEndOffset;
            TotalClusters = other.TotalClusters;
            AllocatedClusters = other.AllocatedClusters;
            FragmentedClusters = other.FragmentedClusters;
            CompressedClusters = other.CompressedClusters;
        }
    }

    /// <summary>A copy of every counter.</summary>
    internal CheckResult Clone() => (CheckResult)MemberwiseClone();

    /// <summary>Overwrites every counter with those of <paramref name="other"/>.</summary>
    internal void CopyFrom(CheckResult other)
    {
        Corruptions = other.Corruptions;
        Leaks = other.Leaks;
        CheckErrors = other.CheckErrors;
        CorruptionsFixed = other.CorruptionsFixed;
        LeaksFixed = other.LeaksFixed;
        ImageEndOffset = other.ImageEndOffset;
        TotalClusters = other.TotalClusters;
        AllocatedClusters = other.AllocatedClusters;
        FragmentedClusters = other.FragmentedClusters;
        CompressedClusters = other.CompressedClusters;
    }
}
