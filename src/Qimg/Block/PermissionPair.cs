namespace Qimg.Block;

/// <summary>A pair of permissions: what a user takes and what it lets other users take.</summary>
/// <param name="Perm">The permissions the user needs.</param>
/// <param name="Shared">The permissions other users may hold at the same time.</param>
public readonly record struct PermissionPair(BlockPermissions Perm, BlockPermissions Shared)
{
    /// <summary>No permissions needed, everything shared: what a freshly opened node holds.</summary>
    public static PermissionPair Unused { get; } = new(BlockPermissions.None, BlockPermissions.All);

    /// <summary>
    /// The permissions qemu-img's <c>blk_new_open</c> requests on the image it opens, from its open flags.
    /// </summary>
    /// <param name="writable">BDRV_O_RDWR: the image is opened for writing.</param>
    /// <param name="noIo">BDRV_O_NO_IO: only metadata is read (<c>info</c>); no consistent read is needed.</param>
    /// <param name="resize">BDRV_O_RESIZE: the image will be resized.</param>
    /// <param name="noShare">BDRV_O_NO_SHARE: others may only read and write-unchanged (<c>convert</c>'s sources).</param>
    public static PermissionPair ForOpen(bool writable, bool noIo, bool resize, bool noShare)
    {
        BlockPermissions perm = BlockPermissions.None;
        if (!noIo)
        {
            perm |= BlockPermissions.ConsistentRead;
            if (writable)
            {
                perm |= BlockPermissions.Write;
            }
        }

        if (resize)
        {
            perm |= BlockPermissions.Resize;
        }

        BlockPermissions shared = noShare
            ? BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged
            : BlockPermissions.All;
        return new PermissionPair(perm, shared);
    }

    /// <summary>
    /// What a filter (a pass-through layer such as raw without offset/size) asks of its child: the parent's own
    /// permissions, unchanged (QEMU's <c>bdrv_filter_default_perms</c>).
    /// </summary>
    public PermissionPair ForFilteredChild() => this;

    /// <summary>
    /// What a format asks of a child that stores its data and/or metadata (QEMU's <c>bdrv_default_perms_for_storage</c>).
    /// </summary>
    /// <param name="role">Data and/or Metadata.</param>
    /// <param name="parentWritable">The format node is open for writing (it may update metadata even when no user writes).</param>
    /// <param name="noIo">The format node was opened with BDRV_O_NO_IO.</param>
    public PermissionPair ForStorageChild(ChildRole role, bool parentWritable, bool noIo)
    {
        BlockPermissions perm = Perm;
        BlockPermissions shared = Shared;
        if ((role & ChildRole.Metadata) != 0)
        {
            if (parentWritable)
            {
                perm |= BlockPermissions.Write | BlockPermissions.Resize;
            }

            if (!noIo)
            {
                perm |= BlockPermissions.ConsistentRead;
            }

            // Metadata must stay consistent: nobody else may write or resize the file.
            shared &= ~(BlockPermissions.Write | BlockPermissions.Resize);
        }

        if ((role & ChildRole.Data) != 0)
        {
            shared &= ~BlockPermissions.Resize;
            if ((perm & BlockPermissions.WriteUnchanged) != 0)
            {
                perm |= BlockPermissions.Write;
            }

            if ((perm & BlockPermissions.Write) != 0)
            {
                perm |= BlockPermissions.Resize;
            }
        }

        return new PermissionPair(perm, shared);
    }

    /// <summary>
    /// What a format asks of its backing file: consistent read if the parent needs it, and writes by others only
    /// when the parent's users tolerate changing data (QEMU's <c>bdrv_default_perms_for_cow</c>).
    /// </summary>
    public PermissionPair ForCowChild()
    {
        BlockPermissions perm = Perm & BlockPermissions.ConsistentRead;
        BlockPermissions shared = (Shared & BlockPermissions.Write) != 0
            ? BlockPermissions.Write | BlockPermissions.Resize
            : BlockPermissions.None;
        shared |= BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged;
        return new PermissionPair(perm, shared);
    }

    /// <summary>QEMU's <c>bdrv_perm_names</c>: "consistent read, write" and so on.</summary>
    public static string Names(BlockPermissions permissions)
    {
        var names = new List<string>(4);
        if ((permissions & BlockPermissions.ConsistentRead) != 0)
        {
            names.Add("consistent read");
        }

        if ((permissions & BlockPermissions.Write) != 0)
        {
            names.Add("write");
        }

        if ((permissions & BlockPermissions.WriteUnchanged) != 0)
        {
            names.Add("write unchanged");
        }

        if ((permissions & BlockPermissions.Resize) != 0)
        {
            names.Add("resize");
        }

        return string.Join(", ", names);
    }
}
