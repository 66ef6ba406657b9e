namespace Qimg.Block;

/// <summary>
/// What a user of a node does with it, or allows others to do (QEMU's <c>BLK_PERM_*</c>, same bit values: the file
/// protocol's image locks use byte 100 + bit index for each permission held and 200 + bit index for each one not
/// shared, so the values are part of the on-disk locking protocol shared with QEMU).
/// </summary>
[Flags]
public enum BlockPermissions
{
    None = 0,
    /// <summary>Reads return consistent data (nobody changes it under the reader's feet).</summary>
    ConsistentRead = 0x01,
    /// <summary>Writes that change the visible content.</summary>
    Write = 0x02,
    /// <summary>Writes that leave the visible content unchanged (copy-on-read).</summary>
    WriteUnchanged = 0x04,
    /// <summary>Changing the size.</summary>
    Resize = 0x08,
    All = 0x0f,
}
