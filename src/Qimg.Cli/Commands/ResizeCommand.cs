using Qimg.Block;
using Qimg.Operations;
using Qimg.Operations.Resize;
using Qimg.Options;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size</c>.
/// As qemu-img, the size is taken off the end of the arguments before the options are scanned, so that "-1G" is a size
/// and not an option.
/// </summary>
internal static class ResizeCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        if (context.Args.Length < 3)
        {
            throw context.ErrorExit("Not enough arguments");
        }

        string sizeText = context.Args[^1];
        context = new CommandContext(context.Command, context.Args[..^1], context.Out, context.Error, context.ProgramName);
        string? format = null;
        bool quiet = false;
        bool imageOpts = false;
        bool shrink = false;
        PreallocationMode preallocation = PreallocationMode.Off;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'f':
                    format = context.OptArg;
                    break;
                case 'q':
                    quiet = true;
                    break;
                case CommandTable.OptionObject:
                    context.ProcessObject(context.OptArg);
                    break;
                case CommandTable.OptionImageOpts:
                    imageOpts = true;
                    break;
                case CommandTable.OptionPreallocation:
                    if (!PreallocationModeNames.TryParse(context.OptArg, out preallocation))
                    {
                        return context.Fail($"Invalid preallocation mode '{context.OptArg}'");
                    }

                    break;
                case CommandTable.OptionShrink:
                    shrink = true;
                    break;
            }
        }

        if (context.Operands.Length != 1)
        {
            throw context.ErrorExit("Expecting image file name and size");
        }

        string fileName = context.Operands[0];
        ResizeTarget size;
        try
        {
            size = ResizeTarget.Parse(sizeText);
        }
        catch (OptionException e)
        {
            return context.Fail(e.Message);
        }

        if (!ImageOpener.TryGetSource(context, fileName, format, imageOpts, out ImageSource? source))
        {
            return 1;
        }

        try
        {
            await ImageResizer.ResizeAsync(new ResizeImageOptions
            {
                Image = source,
                DisplayName = fileName,
                Size = size,
                Preallocation = preallocation,
                Shrink = shrink,
                OpenOptions = ImageOpener.Options(context, forceShare: false),
            }).ConfigureAwait(false);
        }
        catch (ShrinkNotAllowedException e)
        {
            context.ReportError(e.Message);
            context.ReportWarning(ShrinkNotAllowedException.Warning);
            return 1;
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e);
        }

        if (!quiet)
        {
            context.Out.Write("Image resized.\n");
        }

        return 0;
    }
}
