namespace Qimg.Copy;

/// <summary>How <see cref="CopyEngine"/> copies sources into a target (the knobs of qemu-img convert).</summary>
public sealed record CopyOptions
{
    /// <summary>Largest number of requests in flight (<c>-m</c>, 1 to 16).</summary>
    public const int MaxWorkers = 16;

    /// <summary>Zero runs of at least this many bytes (a multiple of 512) are not written as data (<c>-S</c>); 0 writes everything.</summary>
    public int MinSparse { get; init; } = 4096;

    /// <summary>Write every cluster compressed (<c>-c</c>); the target must support compressed writes.</summary>
    public bool Compressed { get; init; }

    /// <summary>Requests in flight (<c>-m</c>).</summary>
    public int Workers { get; init; } = 8;

    /// <summary>Issue writes in guest-offset order (the default; <c>-W</c> turns it off).</summary>
    public bool WriteInOrder { get; init; } = true;

    /// <summary>Turn read errors into zeroes with a warning (<c>--salvage</c>).</summary>
    public bool Salvage { get; init; }

    /// <summary>The target already reads as zero everywhere, so zero ranges need no writes.</summary>
    public bool TargetIsZero { get; init; }

    /// <summary>
    /// The target has a backing file: ranges the sources leave unallocated (above each source's
    /// <see cref="CopySource.StatusBase"/>) are left unallocated in the target.
    /// </summary>
    public bool TargetHasBacking { get; init; }

    /// <summary>Length of the target's backing file when known (-1 otherwise); past it, zeroes must be written explicitly.</summary>
    public long TargetBackingLength { get; init; } = -1;

    /// <summary>Try copy offloading (copy_file_range) for data ranges (<c>-C</c>); falls back to reading and writing.</summary>
    public bool CopyOffload { get; init; }

    /// <summary>Write at most this many bytes per second (<c>-r</c>); 0 means no limit.</summary>
    public long RateLimit { get; init; }

    /// <summary>Bytes per data request (QEMU's 2 MiB IO_BUF_SIZE, raised to the target's preferred transfer size).</summary>
    public int BufferSize { get; init; } = 2 << 20;

    /// <summary>Reports progress as a percentage of the data to copy.</summary>
    public IProgress<double>? Progress { get; init; }

    /// <summary>Receives warnings in qemu-img's words (salvaged read errors).</summary>
    public Action<string>? Warning { get; init; }
}
