using Qimg.Diagnostics;
using Qimg.Formats;

namespace Qimg.Operations.Bitmap;

/// <summary>
/// <c>qemu-img bitmap</c> as a library operation: opens the image for writing without its backing chain (and the
/// <c>-b</c> merge source read-only), applies the actions in order through <see cref="DirtyBitmapCommands"/>, and closes
/// the image, which stores its bitmaps.
/// </summary>
public static class BitmapEditor
{
    /// <summary>Applies <see cref="BitmapEditOptions.Edits"/> to the bitmap.</summary>
    /// <exception cref="OperationException">
    /// An image cannot be opened ("Could not open 'NAME': …"), or an action failed ("Operation ACTION on bitmap NAME
    /// failed: …", with QEMU's hint when it has one); the actions before it are kept.
    /// </exception>
    public static async Task EditAsync(BitmapEditOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        FormatNode image = await OpenAsync(options.Image, options.DisplayName, options.OpenOptions with { ReadOnly = false }, cancellationToken).ConfigureAwait(false);
        await using (image.ConfigureAwait(false))
        {
            FormatNode? source = null;
            if (options.MergeSourceImage is ImageSource mergeSource)
            {
                source = await OpenAsync(mergeSource, mergeSource.FileName, options.OpenOptions with { ReadOnly = true, ForceShare = false }, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                foreach (BitmapEdit edit in options.Edits)
                {
                    try
                    {
                        await ApplyAsync(image, source ?? image, options, edit, cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationException e)
                    {
                        throw new OperationException($"Operation {Name(edit.Action)} on bitmap {options.BitmapName} failed: {e.Message}", e, e.Hint);
                    }
                }
            }
            finally
            {
                if (source is not null)
                {
                    await source.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    private static async ValueTask ApplyAsync(FormatNode image, FormatNode source, BitmapEditOptions options, BitmapEdit edit, CancellationToken cancellationToken)
    {
        string name = options.BitmapName;
        switch (edit.Action)
        {
            case BitmapAction.Add:
                await DirtyBitmapCommands.AddAsync(image, name, options.Granularity, disabled: false, cancellationToken).ConfigureAwait(false);
                break;
            case BitmapAction.Remove:
                await DirtyBitmapCommands.RemoveAsync(image, name, cancellationToken).ConfigureAwait(false);
                break;
            case BitmapAction.Clear:
                DirtyBitmapCommands.Clear(image, name);
                break;
            case BitmapAction.Enable:
                DirtyBitmapCommands.Enable(image, name);
                break;
            case BitmapAction.Disable:
                DirtyBitmapCommands.Disable(image, name);
                break;
            case BitmapAction.Merge:
                DirtyBitmapCommands.Merge(image, name, source, edit.MergeSource ?? throw new ArgumentException("A merge needs a source bitmap", nameof(edit)));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(edit));
        }
    }

    private static string Name(BitmapAction action) => action switch
    {
        BitmapAction.Add => "add",
        BitmapAction.Remove => "remove",
        BitmapAction.Clear => "clear",
        BitmapAction.Enable => "enable",
        BitmapAction.Disable => "disable",
        _ => "merge",
    };

    private static async ValueTask<FormatNode> OpenAsync(ImageSource image, string displayName, ImageOpenOptions open, CancellationToken cancellationToken)
    {
        try
        {
            return await DiskImage.OpenAsync(image.FileName, open with
            {
                Format = image.Format,
                DriverOptions = image.DriverOptions,
                NoBacking = true,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException or OperationException)
        {
            throw new OperationException($"Could not open '{displayName}': {ErrorText.Describe(e)}", e);
        }
    }
}
