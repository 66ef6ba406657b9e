using Qimg.Operations;
using Qimg.Operations.Bitmap;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]]
/// [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap</c>: the actions in command-line order.
/// </summary>
internal static class BitmapCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string? sourceFormat = null;
        string? sourceFile = null;
        bool imageOpts = false;
        long granularity = 0;
        bool add = false;
        bool merge = false;
        var edits = new List<BitmapEdit>();
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'b':
                    sourceFile = context.OptArg;
                    break;
                case 'f':
                    format = context.OptArg;
                    break;
                case 'F':
                    sourceFormat = context.OptArg;
                    break;
                case 'g':
                    if (context.ConvertNumber("granularity", context.OptArg) is not long value)
                    {
                        return 1;
                    }

                    granularity = value;
                    break;
                case CommandTable.OptionAdd:
                    edits.Add(new BitmapEdit(BitmapAction.Add));
                    add = true;
                    break;
                case CommandTable.OptionRemove:
                    edits.Add(new BitmapEdit(BitmapAction.Remove));
                    break;
                case CommandTable.OptionClear:
                    edits.Add(new BitmapEdit(BitmapAction.Clear));
                    break;
                case CommandTable.OptionEnable:
                    edits.Add(new BitmapEdit(BitmapAction.Enable));
                    break;
                case CommandTable.OptionDisable:
                    edits.Add(new BitmapEdit(BitmapAction.Disable));
                    break;
                case CommandTable.OptionMerge:
                    edits.Add(new BitmapEdit(BitmapAction.Merge, context.OptArg));
                    merge = true;
                    break;
                case CommandTable.OptionObject:
                    context.ProcessObject(context.OptArg);
                    break;
                case CommandTable.OptionImageOpts:
                    imageOpts = true;
                    break;
            }
        }

        if (edits.Count == 0)
        {
            return context.Fail("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        }

        if (granularity != 0 && !add)
        {
            return context.Fail("granularity only supported with --add");
        }

        if (sourceFormat is not null && sourceFile is null)
        {
            return context.Fail("-F only supported with -b");
        }

        if (sourceFile is not null && !merge)
        {
            return context.Fail("Merge bitmap source file only supported with --merge");
        }

        ReadOnlySpan<string> operands = context.Operands;
        if (operands.Length != 2)
        {
            return context.Fail("Expecting filename and bitmap name");
        }

        string fileName = operands[0];
        if (!ImageOpener.TryGetSource(context, fileName, format, imageOpts, out ImageSource? image))
        {
            return 1;
        }

        ImageSource? mergeSource = null;
        if (sourceFile is not null && !ImageOpener.TryGetSource(context, sourceFile, sourceFormat, false, out mergeSource))
        {
            return 1;
        }

        try
        {
            await BitmapEditor.EditAsync(new BitmapEditOptions
            {
                Image = image,
                DisplayName = fileName,
                BitmapName = operands[1],
                Edits = edits,
                // qemu-img passes the granularity on as a 32-bit number: 0 means "the default", larger values wrap.
                Granularity = granularity == 0 ? null : (uint)granularity,
                MergeSourceImage = mergeSource,
                OpenOptions = ImageOpener.Options(context, forceShare: false),
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e);
        }

        return 0;
    }
}
