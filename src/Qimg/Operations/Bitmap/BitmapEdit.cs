namespace Qimg.Operations.Bitmap;

/// <summary>One action of a <c>qemu-img bitmap</c> run, in command-line order.</summary>
/// <param name="Action">What to do.</param>
/// <param name="MergeSource">For <see cref="BitmapAction.Merge"/>: the name of the bitmap to merge in.</param>
public sealed record BitmapEdit(BitmapAction Action, string? MergeSource = null);
