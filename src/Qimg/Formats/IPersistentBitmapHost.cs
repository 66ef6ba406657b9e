using Qimg.Block;

namespace Qimg.Formats;

/// <summary>
/// An open image whose format can store persistent dirty bitmaps (qcow2): QEMU's dirty bitmaps of a node together with
/// the driver hooks <c>bdrv_supports_persistent_dirty_bitmap</c>, <c>bdrv_co_can_store_new_dirty_bitmap</c> and
/// <c>bdrv_co_remove_persistent_dirty_bitmap</c>.
/// </summary>
/// <remarks>
/// <para>
/// Lifecycle, as in QEMU: opening the image loads the bitmaps it stores (a bitmap found "in use" is inconsistent: no
/// bits, disabled, removable only). Opening it for writing marks the loaded bitmaps "in use" in the image; while it is
/// open, every write, zero write and discard sets the bits of the enabled bitmaps; disposing it stores every bitmap
/// (new data clusters and tables, a new directory) with "in use" cleared. An image that is not closed cleanly thus
/// leaves its bitmaps in use, and QEMU and qimg then treat them as inconsistent.
/// </para>
/// <para>
/// Bitmap contents are changed in memory (<see cref="Operations.Bitmap.DirtyBitmapCommands"/>) and reach the image
/// when it is closed. Add and remove take the image's metadata lock and are safe alongside I/O.
/// </para>
/// </remarks>
public interface IPersistentBitmapHost
{
    /// <summary>Whether the image can store bitmaps (QEMU's <c>bdrv_supports_persistent_dirty_bitmap</c>: qcow2 version 3).</summary>
    bool SupportsPersistentBitmaps { get; }

    /// <summary>
    /// The bitmaps attached to the image, in QEMU's order (<c>FOR_EACH_DIRTY_BITMAP</c>): the most recently loaded or
    /// added first, so the bitmaps stored in the image come in reverse directory order. A snapshot of the list.
    /// </summary>
    IReadOnlyList<DirtyBitmap> DirtyBitmaps { get; }

    /// <summary>
    /// Adds a persistent bitmap covering the image, with no bits set (QEMU's <c>block-dirty-bitmap-add</c> with
    /// persistent=true, after its name and granularity checks). It is stored when the image is closed.
    /// </summary>
    /// <param name="name">A non-empty name, unique in the image.</param>
    /// <param name="granularityBits">log2 of the granularity (9 or more).</param>
    /// <param name="disabled">Add it disabled: writes do not set its bits.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <exception cref="InvalidOperationException">
    /// The bitmap cannot be stored, in QEMU's words ("Bitmap already exists: NAME", "Can't make bitmap 'NAME' persistent
    /// in 'NODE': …"), or the image is read-only.
    /// </exception>
    ValueTask<DirtyBitmap> AddDirtyBitmapAsync(string name, int granularityBits, bool disabled, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes a bitmap from the image at once (a new bitmap directory without it, its clusters freed) and detaches it
    /// (QEMU's <c>block-dirty-bitmap-remove</c> of a persistent bitmap, after its checks).
    /// </summary>
    /// <exception cref="InvalidOperationException">The image is read-only.</exception>
    /// <exception cref="IOException">Updating the image failed ("Failed to update bitmap extension: …").</exception>
    ValueTask RemoveDirtyBitmapAsync(DirtyBitmap bitmap, CancellationToken cancellationToken = default);
}
