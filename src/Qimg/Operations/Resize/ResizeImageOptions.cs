using Qimg.Block;
using Qimg.Formats;

namespace Qimg.Operations.Resize;

/// <summary>What <see cref="ImageResizer.ResizeAsync"/> does: <c>qemu-img resize</c>'s options and operands.</summary>
public sealed record ResizeImageOptions
{
    /// <summary>The image to resize (opened for writing with the resize permission).</summary>
    public required ImageSource Image { get; init; }

    /// <summary>The name qemu-img quotes when the image cannot be opened (the file name or the --image-opts string).</summary>
    public required string DisplayName { get; init; }

    /// <summary>The new size (<see cref="ResizeTarget.Parse"/>): absolute, or relative to the current size.</summary>
    public required ResizeTarget Size { get; init; }

    /// <summary>How the new area is allocated (<c>--preallocation</c>); only growing may preallocate.</summary>
    public PreallocationMode Preallocation { get; init; }

    /// <summary>Shrinking is allowed (<c>--shrink</c>); without it a smaller size is refused.</summary>
    public bool Shrink { get; init; }

    /// <summary>Open options (locking, warnings, policy); read-only and resize are set by the operation.</summary>
    public ImageOpenOptions OpenOptions { get; init; } = new();
}
