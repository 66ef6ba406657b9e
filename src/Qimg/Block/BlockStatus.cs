namespace Qimg.Block;

/// <summary>
/// Status bits of a guest range, with QEMU's <c>BDRV_BLOCK_*</c> meanings (same bit values, so traces
/// compare easily).
/// </summary>
[Flags]
public enum BlockStatusFlags
{
    None = 0,
    /// <summary>The range holds data in this layer (reads come from this node or its file).</summary>
    Data = 0x01,
    /// <summary>The range reads as zeroes.</summary>
    Zero = 0x02,
    /// <summary><see cref="BlockStatus.HostNode"/> and <see cref="BlockStatus.HostOffset"/> say where the bytes live.</summary>
    OffsetValid = 0x04,
    /// <summary>Driver answer only: "ask <see cref="BlockStatus.HostNode"/> at HostOffset" (a pass-through layer such as raw).</summary>
    Raw = 0x08,
    /// <summary>The range is allocated in this layer (set by the generic layer, never by drivers).</summary>
    Allocated = 0x10,
    /// <summary>The answer reaches the end of the node (set by the generic layer).</summary>
    Eof = 0x20,
    /// <summary>Driver answer only: Data at a host offset that the host node may refine to Zero (a hole in the file).</summary>
    Recurse = 0x40,
}

/// <summary>
/// The answer of a block-status query: the flags that hold for <see cref="Length"/> bytes starting at the
/// queried offset, and where those bytes live when <see cref="BlockStatusFlags.OffsetValid"/> is set.
/// </summary>
/// <param name="Flags">What holds for the whole range.</param>
/// <param name="Length">How many bytes from the queried offset the answer covers; 0 only at or past the end.</param>
/// <param name="HostNode">The node holding the bytes (a protocol node, usually), when the offset is valid.</param>
/// <param name="HostOffset">Offset of the first byte in <paramref name="HostNode"/>, when the offset is valid.</param>
public readonly record struct BlockStatus(BlockStatusFlags Flags, long Length, BlockNode? HostNode = null, long HostOffset = 0)
{
    public bool IsData => (Flags & BlockStatusFlags.Data) != 0;
    public bool IsZero => (Flags & BlockStatusFlags.Zero) != 0;
    public bool IsAllocated => (Flags & BlockStatusFlags.Allocated) != 0;
    public bool IsOffsetValid => (Flags & BlockStatusFlags.OffsetValid) != 0;
    public bool IsEof => (Flags & BlockStatusFlags.Eof) != 0;

    /// <summary>An "unallocated in this layer" answer (falls through to the backing file, or reads as zero).</summary>
    public static BlockStatus Unallocated(long length) => new(BlockStatusFlags.None, length);
}
