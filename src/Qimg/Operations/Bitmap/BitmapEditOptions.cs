using Qimg.Formats;

namespace Qimg.Operations.Bitmap;

/// <summary>What <see cref="BitmapEditor.EditAsync"/> does: <c>qemu-img bitmap</c>'s options and operands.</summary>
public sealed record BitmapEditOptions
{
    /// <summary>The image whose bitmap is changed (opened for writing, without its backing file).</summary>
    public required ImageSource Image { get; init; }

    /// <summary>The name qemu-img quotes when the image cannot be opened (the file name or the --image-opts string).</summary>
    public required string DisplayName { get; init; }

    /// <summary>The bitmap's name.</summary>
    public required string BitmapName { get; init; }

    /// <summary>The actions, applied in order; a failure stops the run (earlier actions are kept).</summary>
    public required IReadOnlyList<BitmapEdit> Edits { get; init; }

    /// <summary>Granularity in bytes for <see cref="BitmapAction.Add"/> (<c>-g</c>); null takes the image's default.</summary>
    public long? Granularity { get; init; }

    /// <summary>The image merged bitmaps come from (<c>-b</c>, opened read-only without backing); null means the image itself.</summary>
    public ImageSource? MergeSourceImage { get; init; }

    /// <summary>Open options (locking, warnings, policy); read-only and backing settings are set by the operation.</summary>
    public ImageOpenOptions OpenOptions { get; init; } = new();
}
