using Qimg.Operations;
using Qimg.Operations.Create;
using Qimg.Options;

namespace Qimg.Cli.Commands;

/// <summary><c>create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]</c></summary>
internal static class CreateCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string format = "raw";
        string? backingFormat = null;
        string? backingFile = null;
        string? options = null;
        bool quiet = false;
        bool skipBackingOpen = false;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'F':
                    backingFormat = context.OptArg;
                    break;
                case 'b':
                    backingFile = context.OptArg;
                    break;
                case 'f':
                    format = context.OptArg;
                    break;
                case 'o':
                    if (!context.TryAccumulateOptions(ref options))
                    {
                        return 1;
                    }

                    break;
                case 'q':
                    quiet = true;
                    break;
                case 'u':
                    skipBackingOpen = true;
                    break;
                case CommandTable.OptionObject:
                    context.ProcessObject(context.OptArg);
                    break;
            }
        }

        ReadOnlySpan<string> operands = context.Operands;
        string? fileName = operands.Length > 0 ? operands[0] : null;
        if (options is not null && OptionString.HasHelpOption(options))
        {
            try
            {
                context.Out.Write(ImageCreator.GetOptionHelp(format, fileName));
                return 0;
            }
            catch (OperationException e)
            {
                return context.Fail(e);
            }
        }

        if (fileName is null)
        {
            throw context.ErrorExit("Expecting image file name");
        }

        ulong? size = null;
        if (operands.Length > 1)
        {
            long? parsed = context.ConvertNumber("image size", operands[1]);
            if (parsed is null)
            {
                return 1;
            }

            size = (ulong)parsed.Value;
        }

        if (operands.Length > 2)
        {
            throw context.ErrorExit($"Unexpected argument: {operands[2]}");
        }

        var request = new CreateImageOptions
        {
            FileName = fileName,
            Format = format,
            BackingFile = backingFile,
            BackingFormat = backingFormat,
            Options = options,
            Size = size,
            SkipBackingOpen = skipBackingOpen,
            Warning = context.ReportWarning,
        };
        try
        {
            ImageCreation creation = await ImageCreator.PrepareAsync(request).ConfigureAwait(false);
            if (!quiet)
            {
                context.Out.Write(creation.FormattingLine + "\n");
                context.Out.Flush();
            }

            await creation.CreateAsync().ConfigureAwait(false);
            return 0;
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e, fileName + ": ");
        }
    }
}
