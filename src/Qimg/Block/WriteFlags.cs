namespace Qimg.Block;

/// <summary>Flags of a write request (QEMU's <c>BDRV_REQ_*</c> that apply to writes).</summary>
[Flags]
public enum WriteFlags
{
    None = 0,
    /// <summary>Force unit access: the data is on stable storage when the write completes.</summary>
    Fua = 0x10,
    /// <summary>Store the data compressed (qcow2 compressed clusters); only whole, aligned clusters.</summary>
    Compressed = 0x20,
}

/// <summary>Flags of a write-zeroes request.</summary>
[Flags]
public enum ZeroFlags
{
    None = 0,
    /// <summary>The range may be deallocated as long as it reads back as zeroes.</summary>
    MayUnmap = 0x4,
    /// <summary>Fail with <see cref="NotSupportedException"/> instead of writing explicit zero buffers.</summary>
    NoFallback = 0x100,
    /// <summary>Force unit access.</summary>
    Fua = 0x10,
}
