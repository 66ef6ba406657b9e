using System.Numerics;
using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;

namespace Qimg.Operations.Bitmap;

/// <summary>
/// QEMU's dirty bitmap commands (<c>block-dirty-bitmap-add/remove/clear/enable/disable/merge</c>, as qemu-img uses them)
/// on the bitmaps of an open image, with QEMU's checks and messages. Changes to bitmap contents and flags are made in
/// memory and stored when the image is closed; add and remove go through the image (<see cref="IPersistentBitmapHost"/>).
/// </summary>
public static class DirtyBitmapCommands
{
    private const string InconsistentHint = "Try block-dirty-bitmap-remove to delete this bitmap from disk\n";

    /// <summary>
    /// Adds a persistent bitmap (QEMU's qmp_block_dirty_bitmap_add with persistent=true). Without
    /// <paramref name="granularity"/>, the image's cluster size within 4 KiB - 64 KiB is used (64 KiB without one).
    /// </summary>
    /// <exception cref="OperationException">The name or granularity is invalid, or the image cannot store the bitmap.</exception>
    public static async ValueTask<DirtyBitmap> AddAsync(FormatNode image, string name, long? granularity, bool disabled, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (string.IsNullOrEmpty(name))
        {
            throw new OperationException("Bitmap name cannot be empty");
        }

        long bytes;
        if (granularity is long given)
        {
            if (given < 512 || !BitOperations.IsPow2(given) || given > uint.MaxValue)
            {
                throw new OperationException("Granularity must be power of 2 and at least 512");
            }

            bytes = given;
        }
        else
        {
            bytes = image.ClusterSize > 0 ? Math.Clamp(image.ClusterSize, 4096, 65536) : 65536;
        }

        if (image is not IPersistentBitmapHost host)
        {
            throw new OperationException($"Can't store persistent bitmaps to {NodeName()}: Operation not supported");
        }

        try
        {
            return await host.AddDirtyBitmapAsync(name, BitOperations.Log2((ulong)bytes), disabled, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            throw new OperationException(e.Message, e);
        }
    }

    /// <summary>Removes a bitmap from the image and detaches it (QEMU's qmp_block_dirty_bitmap_remove).</summary>
    /// <exception cref="OperationException">No such bitmap, it is read-only, or updating the image failed.</exception>
    public static async ValueTask RemoveAsync(FormatNode image, string name, CancellationToken cancellationToken = default)
    {
        DirtyBitmap bitmap = Find(image, name);
        if (bitmap.IsReadOnly)
        {
            throw new OperationException($"Bitmap '{bitmap.Name}' is readonly and cannot be modified");
        }

        try
        {
            await ((IPersistentBitmapHost)image).RemoveDirtyBitmapAsync(bitmap, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException)
        {
            throw new OperationException(ErrorText.Describe(e), e);
        }
    }

    /// <summary>Clears every bit (QEMU's qmp_block_dirty_bitmap_clear).</summary>
    /// <exception cref="OperationException">No such bitmap, or it is read-only or inconsistent.</exception>
    public static void Clear(FormatNode image, string name)
    {
        DirtyBitmap bitmap = Find(image, name);
        CheckUsable(bitmap, allowReadOnly: false);
        bitmap.Clear();
    }

    /// <summary>Makes writes set the bitmap's bits (QEMU's qmp_block_dirty_bitmap_enable).</summary>
    /// <exception cref="OperationException">No such bitmap, or it is inconsistent.</exception>
    public static void Enable(FormatNode image, string name)
    {
        DirtyBitmap bitmap = Find(image, name);
        CheckUsable(bitmap, allowReadOnly: true);
        bitmap.IsEnabled = true;
    }

    /// <summary>Stops writes from setting the bitmap's bits (QEMU's qmp_block_dirty_bitmap_disable).</summary>
    /// <exception cref="OperationException">No such bitmap, or it is inconsistent.</exception>
    public static void Disable(FormatNode image, string name)
    {
        DirtyBitmap bitmap = Find(image, name);
        CheckUsable(bitmap, allowReadOnly: true);
        bitmap.IsEnabled = false;
    }

    /// <summary>
    /// ORs the bits of <paramref name="sourceName"/> in <paramref name="source"/> into <paramref name="targetName"/> in
    /// <paramref name="target"/> (QEMU's qmp_block_dirty_bitmap_merge with one source): the target must be writable and
    /// consistent, the source consistent, and both must cover the same size.
    /// </summary>
    /// <exception cref="OperationException">A bitmap is missing or unusable, or the sizes differ.</exception>
    public static void Merge(FormatNode target, string targetName, FormatNode source, string sourceName)
    {
        DirtyBitmap destination = Find(target, targetName);
        DirtyBitmap from = Find(source, sourceName);
        CheckUsable(destination, allowReadOnly: false);
        CheckUsable(from, allowReadOnly: true);
        if (from.Size != destination.Size)
        {
            throw new OperationException($"Bitmaps are of different sizes (destination size is {destination.Size}, source size is {from.Size}) and can't be merged");
        }

        destination.MergeFrom(from);
    }

    /// <summary>The bitmap named <paramref name="name"/> (QEMU's block_dirty_bitmap_lookup).</summary>
    /// <exception cref="OperationException">"Dirty bitmap 'NAME' not found".</exception>
    public static DirtyBitmap Find(FormatNode image, string name)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image is IPersistentBitmapHost host)
        {
            foreach (DirtyBitmap bitmap in host.DirtyBitmaps)
            {
                if (bitmap.Name == name)
                {
                    return bitmap;
                }
            }
        }

        throw new OperationException($"Dirty bitmap '{name}' not found");
    }

    /// <summary>QEMU's bdrv_dirty_bitmap_check with BDRV_BITMAP_DEFAULT, or BDRV_BITMAP_ALLOW_RO.</summary>
    private static void CheckUsable(DirtyBitmap bitmap, bool allowReadOnly)
    {
        if (!allowReadOnly && bitmap.IsReadOnly)
        {
            throw new OperationException($"Bitmap '{bitmap.Name}' is readonly and cannot be modified");
        }

        if (bitmap.IsInconsistent)
        {
            throw new OperationException($"Bitmap '{bitmap.Name}' is inconsistent and cannot be used", InconsistentHint);
        }
    }

    /// <summary>An anonymous node's generated name as QEMU's messages show it ("#block" + counter + two random digits).</summary>
    private static string NodeName() => "#block1" + Random.Shared.Next(100).ToString("D2", System.Globalization.CultureInfo.InvariantCulture);
}
