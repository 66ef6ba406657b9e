using Qimg.Cli.Output;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Map;

namespace Qimg.Cli.Commands;

/// <summary><c>map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename</c></summary>
internal static class MapCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string? output = null;
        bool imageOpts = false;
        bool forceShare = false;
        long start = 0;
        long? maxLength = null;
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
                case 's':
                    if (context.ConvertNumber("start offset", context.OptArg) is not long offset)
                    {
                        return 1;
                    }

                    start = offset;
                    break;
                case 'l':
                    if (context.ConvertNumber("max length", context.OptArg) is not long length)
                    {
                        return 1;
                    }

                    maxLength = length;
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

        FormatNode? image = await ImageOpener.TryOpenAsync(context, fileName, format, imageOpts, ImageOpener.Options(context, forceShare)).ConfigureAwait(false);
        if (image is null)
        {
            return 1;
        }

        await using (image.ConfigureAwait(false))
        {
            return await WriteMapAsync(context, image, start, maxLength, outputFormat).ConfigureAwait(false);
        }
    }

    private static async ValueTask<int> WriteMapAsync(CommandContext context, FormatNode image, long start, long? maxLength, OutputFormat outputFormat)
    {
        TextWriter output = context.Out;
        bool human = outputFormat == OutputFormat.Human;
        output.Write(human ? MapRenderer.HumanHeader : "[");
        bool any = false;
        try
        {
            // Each extent is written when it arrives, as qemu-img prints it: the mapper yields an extent as soon as
            // its successor is known, so a failing lookup further on comes after the extents qemu-img has printed.
            await foreach (MapEntry entry in ImageMapper.GetExtentsAsync(image, start, maxLength, humanMerging: human).ConfigureAwait(false))
            {
                any = true;
                if (!Write(context, entry, human, entry.IsLast))
                {
                    return 1;
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException)
        {
            return context.Fail($"Could not read file metadata: {ErrorText.Describe(e)}");
        }

        // qemu-img always dumps its last entry; with nothing to map it is an empty one at the start offset.
        if (!any && !Write(context, new MapEntry(start, 0, false, false, 0, false, null, null), human, last: true))
        {
            return 1;
        }

        if (!human)
        {
            output.Write("]\n");
        }

        return 0;
    }

    private static bool Write(CommandContext context, in MapEntry entry, bool human, bool last)
    {
        if (human)
        {
            if (entry.Data && entry.Offset is null)
            {
                context.ReportError("File contains external, encrypted or compressed clusters.");
                return false;
            }

            context.Out.Write(MapRenderer.ToHuman(entry));
        }
        else
        {
            MapRenderer.WriteJson(context.Out, entry, last);
        }

        return true;
    }
}
