namespace Qimg.Formats.Qcow2;

/// <summary>
/// An in-flight cluster allocation of a write request (QEMU's QCowL2Meta): the guest clusters being (re)allocated, where
/// their new host clusters are, and the copy-on-write regions around the written bytes. Registered while the data is
/// written, so that overlapping requests wait, and linked into the L2 table once the data is in place.
/// </summary>
internal sealed class Qcow2Allocation
{
    /// <summary>Guest offset of the first cluster (cluster-aligned).</summary>
    public required long GuestOffset { get; init; }

    /// <summary>Host offset of the first (new or kept) cluster.</summary>
    public required long HostOffset { get; init; }

    public required int ClusterCount { get; init; }

    /// <summary>The clusters were allocated before (only subclusters are being allocated); do not free old ones.</summary>
    public required bool KeepOldClusters { get; init; }

    /// <summary>COW region before the written bytes: offset from <see cref="GuestOffset"/> and length.</summary>
    public required (int Offset, int Bytes) CowStart { get; init; }

    /// <summary>COW region after the written bytes; its Offset is where the written bytes end.</summary>
    public required (int Offset, int Bytes) CowEnd { get; init; }

    /// <summary>The COW regions were already handled (zeroed efficiently); nothing to copy.</summary>
    public bool SkipCow { get; set; }

    /// <summary>A preallocation: subclusters are not marked allocated in the L2 bitmap.</summary>
    public bool Prealloc { get; set; }

    /// <summary>Completed when the allocation has been linked (or aborted); overlapping requests wait for it.</summary>
    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Guest offset where the COW-affected area starts.</summary>
    public long CowStartGuest => GuestOffset + CowStart.Offset;

    /// <summary>Guest offset where the COW-affected area ends.</summary>
    public long CowEndGuest => GuestOffset + CowEnd.Offset + CowEnd.Bytes;

    public bool HasCow => CowStart.Bytes != 0 || CowEnd.Bytes != 0;
}
