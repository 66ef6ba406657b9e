using System.Diagnostics.CodeAnalysis;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations;

namespace Qimg.Cli;

/// <summary>
/// qemu-img's <c>img_open</c> for the commands: turns a file name with <c>-f</c>, or an <c>--image-opts</c> string,
/// into an <see cref="ImageSource"/>, and builds the open options with qemu-img's defaults.
/// </summary>
internal static class ImageOpener
{
    /// <summary>The image source, or false after reporting qemu-img's error ("Could not open '…': …").</summary>
    public static bool TryGetSource(CommandContext context, string fileName, string? format, bool imageOpts, [NotNullWhen(true)] out ImageSource? source)
    {
        source = null;
        try
        {
            source = GetSource(context, fileName, format, imageOpts);
            return true;
        }
        catch (OperationException e)
        {
            context.ReportError(e.Message);
            return false;
        }
        catch (ImageOpenException e)
        {
            context.ReportError($"Could not open '{fileName}': {e.Message}");
            return false;
        }
    }

    /// <summary>
    /// The image source of a file name with <c>-f</c>, or of an <c>--image-opts</c> string.
    /// </summary>
    /// <exception cref="OperationException">Both <c>--image-opts</c> and <c>-f</c> were given (qemu-img's img_open refuses the pair).</exception>
    /// <exception cref="ImageOpenException">The option string is invalid.</exception>
    public static ImageSource GetSource(CommandContext context, string fileName, string? format, bool imageOpts)
    {
        if (imageOpts && format is not null)
        {
            throw new OperationException("--image-opts and --format are mutually exclusive");
        }

        return imageOpts
            ? ImageSource.FromImageOptions(fileName, context.ReportWarning)
            : ImageSource.FromFileName(fileName, format);
    }

    /// <summary>
    /// qemu-img's <c>img_open</c>: opens the image (file name with <c>-f</c>, or <c>--image-opts</c>) with
    /// <paramref name="options"/>, or reports "Could not open 'NAME': …" and returns null.
    /// </summary>
    public static async ValueTask<FormatNode?> TryOpenAsync(CommandContext context, string fileName, string? format, bool imageOpts, ImageOpenOptions options)
    {
        if (!TryGetSource(context, fileName, format, imageOpts, out ImageSource? source))
        {
            return null;
        }

        try
        {
            return await DiskImage.OpenAsync(source.FileName, options with
            {
                Format = source.Format,
                DriverOptions = source.DriverOptions,
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            context.Fail(e, $"Could not open '{fileName}': ");
            return null;
        }
    }

    /// <summary>Read-only open options as qemu-img uses them (writeback cache, qemu's locking, <c>-U</c> sharing).</summary>
    public static ImageOpenOptions Options(CommandContext context, bool forceShare) => new()
    {
        ReadOnly = true,
        ForceShare = forceShare,
        Warning = context.ReportWarning,
        Message = context.ReportVerbatim,
        CheckReport = message => Commands.CheckCommand.WriteMessage(context, message),
    };
}
