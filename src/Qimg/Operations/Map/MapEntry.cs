namespace Qimg.Operations.Map;

/// <summary>
/// One extent of <c>qemu-img map</c> (QEMU's QAPI <c>MapEntry</c>): a guest range with the same status, the layer of
/// the backing chain that defines it, and where its bytes live.
/// </summary>
/// <param name="Start">Guest offset of the extent.</param>
/// <param name="Length">Length in bytes.</param>
/// <param name="Data">The range holds data (reads come from <see cref="FileName"/> at <see cref="Offset"/>).</param>
/// <param name="Zero">The range reads as zeroes.</param>
/// <param name="Depth">0 for the top image, 1 for its backing file, and so on.</param>
/// <param name="Present">Some layer of the chain allocates the range (false: it reads from nowhere, as zeroes).</param>
/// <param name="Offset">Offset of the first byte in <see cref="FileName"/>, or null when not known (compressed, encrypted…).</param>
/// <param name="FileName">The file holding the bytes, or null when the offset is not known.</param>
public readonly record struct MapEntry(long Start, long Length, bool Data, bool Zero, int Depth, bool Present, long? Offset, string? FileName)
{
    /// <summary>
    /// True for the last extent <see cref="ImageMapper.GetExtentsAsync"/> yields. Every other extent is yielded as soon
    /// as its successor is known (that is when qemu-img prints it), so a caller can write each one when it arrives.
    /// </summary>
    public bool IsLast { get; init; }

    /// <summary>
    /// Whether <paramref name="next"/> continues this extent (qemu-img's <c>entry_mergeable</c>): same flags, depth and
    /// file, and contiguous host offsets.
    /// </summary>
    public bool CanMerge(in MapEntry next)
    {
        if (Length == 0 || Zero != next.Zero || Data != next.Data || Depth != next.Depth || Present != next.Present
            || (FileName is null) != (next.FileName is null) || Offset.HasValue != next.Offset.HasValue)
        {
            return false;
        }

        if (FileName is not null && FileName != next.FileName)
        {
            return false;
        }

        return Offset is not long offset || offset + Length == next.Offset;
    }
}
