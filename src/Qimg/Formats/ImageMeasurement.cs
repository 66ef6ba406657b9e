namespace Qimg.Formats;

/// <summary>The sizes <c>qemu-img measure</c> reports (QEMU's BlockMeasureInfo), in bytes (unsigned, as QEMU's).</summary>
/// <param name="Required">The file size the new image needs for the data to copy (plus all its metadata).</param>
/// <param name="FullyAllocated">The file size with every cluster of the virtual disk allocated.</param>
/// <param name="Bitmaps">
/// The space the source's persistent bitmaps would take, or null when the source or the target cannot store bitmaps.
/// </param>
public sealed record ImageMeasurement(ulong Required, ulong FullyAllocated, ulong? Bitmaps = null);
