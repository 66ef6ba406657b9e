using Qimg.Operations;
using Qimg.Operations.Dd;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output</c>.
/// The operands are read as qemu-img reads them: in order, each "name=value", a bad one ending the command at once.
/// </summary>
internal static class DdCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string outputFormat = "raw";
        bool imageOpts = false;
        bool forceShare = false;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'O':
                    outputFormat = context.OptArg;
                    break;
                case 'f':
                    format = context.OptArg;
                    break;
                case 'U':
                    forceShare = true;
                    break;
                case CommandTable.OptionObject:
                    context.ProcessObject(context.OptArg);
                    break;
                case CommandTable.OptionImageOpts:
                    imageOpts = true;
                    break;
            }
        }

        string? input = null;
        string? output = null;
        int blockSize = 512;
        long? count = null;
        long? skip = null;
        foreach (string operand in context.Operands)
        {
            int equals = operand.IndexOf('=', StringComparison.Ordinal);
            string name = equals < 0 ? operand : operand[..equals];
            string value = equals < 0 ? string.Empty : operand[(equals + 1)..];
            switch (equals < 0 ? null : name)
            {
                case "bs":
                    long? parsed = context.ConvertNumber("bs", value, 1, int.MaxValue);
                    if (parsed is null)
                    {
                        return 1;
                    }

                    blockSize = (int)parsed.Value;
                    break;
                case "count":
                    count = context.ConvertNumber("count", value);
                    if (count is null)
                    {
                        return 1;
                    }

                    break;
                case "if":
                    input = value;
                    break;
                case "of":
                    output = value;
                    break;
                case "skip":
                    skip = context.ConvertNumber("skip", value);
                    if (skip is null)
                    {
                        return 1;
                    }

                    break;
                default:
                    return context.Fail($"unrecognized operand {name}");
            }
        }

        if (input is null || output is null)
        {
            return context.Fail("Must specify both input and output files");
        }

        if (!ImageOpener.TryGetSource(context, input, format, imageOpts, out ImageSource? source))
        {
            return 1;
        }

        DdResult result;
        try
        {
            result = await ImageDd.CopyAsync(new DdOptions
            {
                Input = source,
                InputName = input,
                Output = output,
                OutputFormat = outputFormat,
                BlockSize = blockSize,
                Count = count,
                Skip = skip,
                OpenOptions = ImageOpener.Options(context, forceShare),
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e);
        }

        if (result.SkippedPastEnd)
        {
            context.ReportError($"{input}: cannot skip to specified offset");
        }

        return 0;
    }
}
