using Qimg.Cli.Output;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Info;

namespace Qimg.Cli.Commands;

/// <summary><c>info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename</c></summary>
internal static class InfoCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string? output = null;
        bool chain = false;
        bool imageOpts = false;
        bool forceShare = false;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'f':
                    format = context.OptArg;
                    break;
                case 'U':
                    forceShare = true;
                    break;
                case CommandTable.OptionOutput:
                    output = context.OptArg;
                    break;
                case CommandTable.OptionBackingChain:
                    chain = true;
                    break;
                case CommandTable.OptionObject:
                    context.ProcessObject(context.OptArg);
                    break;
                case CommandTable.OptionImageOpts:
                    imageOpts = true;
                    break;
            }
        }

        string fileName = context.SingleImageFileName();
        if (!context.TryParseOutputFormat(output, out OutputFormat outputFormat, out string? error))
        {
            return context.Fail(error);
        }

        if (!ImageOpener.TryGetSource(context, fileName, format, imageOpts, out ImageSource? source))
        {
            return 1;
        }

        IReadOnlyList<ImageInfo> list;
        try
        {
            list = await ImageInfoReader.CollectAsync(source, fileName, ImageOpener.Options(context, forceShare), chain).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e);
        }

        if (outputFormat == OutputFormat.Human)
        {
            context.Out.Write(string.Join("\n", list.Select(ImageInfoRenderer.ToHuman)));
        }
        else
        {
            context.Out.Write((chain ? ImageInfoRenderer.ToJson(list) : ImageInfoRenderer.ToJson(list[0])) + "\n");
        }

        return 0;
    }
}
