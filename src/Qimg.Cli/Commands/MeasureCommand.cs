using System.Globalization;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Convert;
using Qimg.Operations.Measure;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef] [--image-opts] [-f fmt]
/// [-l snapshot_param] filename]</c>: the required, fully allocated and (qcow2 v3 from a source that stores bitmaps)
/// bitmaps sizes of a new image.
/// </summary>
internal static class MeasureCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string targetFormat = "raw";
        string? options = null;
        SnapshotSelector? snapshot = null;
        bool forceShare = false;
        bool imageOpts = false;
        OutputFormat outputFormat = OutputFormat.Human;
        ulong? size = null;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'f':
                    format = context.OptArg;
                    break;
                case 'O':
                    targetFormat = context.OptArg;
                    break;
                case 'o':
                    if (!context.TryAccumulateOptions(ref options))
                    {
                        return 1;
                    }

                    break;
                case 'l':
                    if (!ConvertCommand.TryParseSnapshot(context, context.OptArg, out snapshot))
                    {
                        return 1;
                    }

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
                case CommandTable.OptionOutput:
                    if (!context.TryParseOutputFormat(context.OptArg, out outputFormat, out string? error))
                    {
                        return context.Fail(error);
                    }

                    break;
                case CommandTable.OptionSize:
                    long? parsed = context.ConvertNumber("image size", context.OptArg);
                    if (parsed is null)
                    {
                        return 1;
                    }

                    size = (ulong)parsed.Value;
                    break;
            }
        }

        ReadOnlySpan<string> operands = context.Operands;
        if (operands.Length > 1)
        {
            return context.Fail("At most one filename argument is allowed.");
        }

        string? fileName = operands.Length == 1 ? operands[0] : null;
        if (fileName is null && (imageOpts || format is not null || snapshot is not null))
        {
            return context.Fail("--image-opts, -f, and -l require a filename argument.");
        }

        if (fileName is not null && size is not null)
        {
            return context.Fail("--size N cannot be used together with a filename.");
        }

        if (fileName is null && size is null)
        {
            return context.Fail("Either --size N or one filename must be specified.");
        }

        ImageSource? source = null;
        if (fileName is not null && !ImageOpener.TryGetSource(context, fileName, format, imageOpts, out source))
        {
            return 1;
        }

        ImageMeasurement measurement;
        try
        {
            measurement = await ImageMeasurer.MeasureAsync(new MeasureImageOptions
            {
                Source = source,
                DisplayName = fileName,
                Snapshot = snapshot,
                Size = size,
                TargetFormat = targetFormat,
                Options = options,
                Secrets = context.Secrets,
                OpenOptions = ImageOpener.Options(context, forceShare),
            }).ConfigureAwait(false);
        }
        catch (InvalidCreateOptionsException e)
        {
            context.ReportError(e.Message);
            context.ReportError(e.FollowUp);
            return 1;
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e);
        }

        context.Out.Write(outputFormat == OutputFormat.Human ? ToHuman(measurement) : ToJson(measurement));
        return 0;
    }

    private static string ToHuman(ImageMeasurement measurement)
    {
        string text = string.Create(CultureInfo.InvariantCulture, $"required size: {measurement.Required}\nfully allocated size: {measurement.FullyAllocated}\n");
        return measurement.Bitmaps is ulong bitmaps ? text + string.Create(CultureInfo.InvariantCulture, $"bitmaps size: {bitmaps}\n") : text;
    }

    /// <summary>QEMU's pretty JSON of BlockMeasureInfo: the optional bitmaps member first, as its QAPI visitor emits it.</summary>
    private static string ToJson(ImageMeasurement measurement)
    {
        string bitmaps = measurement.Bitmaps is ulong value ? string.Create(CultureInfo.InvariantCulture, $"    \"bitmaps\": {value},\n") : string.Empty;
        return string.Create(CultureInfo.InvariantCulture, $"{{\n{bitmaps}    \"required\": {measurement.Required},\n    \"fully-allocated\": {measurement.FullyAllocated}\n}}\n");
    }
}
