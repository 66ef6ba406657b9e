using Qimg.Block;
using Qimg.Cli.Output;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Check;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename</c>.
/// Exit status as qemu-img's: 0 consistent, 1 the check could not complete, 2 corruptions, 3 only leaks, 63 the format
/// has no check.
/// </summary>
internal static class CheckCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string? output = null;
        string cache = "writeback";
        RepairMode repair = RepairMode.None;
        bool quiet = false;
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
                case 'r':
                    repair = context.OptArg switch
                    {
                        "leaks" => RepairMode.Leaks,
                        "all" => RepairMode.All,
                        _ => throw context.ErrorExit($"Unknown option value for -r (expecting 'leaks' or 'all'): {context.OptArg}"),
                    };
                    break;
                case CommandTable.OptionOutput:
                    output = context.OptArg;
                    break;
                case 'T':
                    cache = context.OptArg;
                    break;
                case 'q':
                    quiet = true;
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

        string fileName = context.SingleImageFileName();
        if (!context.TryParseOutputFormat(output, out OutputFormat outputFormat, out string? error))
        {
            return context.Fail(error);
        }

        if (!CacheMode.TryParse(cache, out CacheMode cacheMode))
        {
            return context.Fail($"Invalid source cache option: {cache}");
        }

        if (!ImageOpener.TryGetSource(context, fileName, format, imageOpts, out ImageSource? source))
        {
            return 1;
        }

        ImageOpenOptions options = ImageChecker.OpenOptions(ImageOpener.Options(context, forceShare), repair) with
        {
            Format = source.Format,
            DriverOptions = source.DriverOptions,
            Cache = cacheMode,
        };
        if (forceShare && !options.ReadOnly)
        {
            return context.Fail($"Could not open '{fileName}': force-share=on can only be used with read-only images");
        }

        FormatNode image;
        try
        {
            image = await DiskImage.OpenAsync(source.FileName, options).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            return context.Fail(e, $"Could not open '{fileName}': ");
        }

        await using (image.ConfigureAwait(false))
        {
            ImageCheckReport report;
            try
            {
                report = await ImageChecker.CheckAsync(
                    image,
                    fileName,
                    repair,
                    message => WriteMessage(context, message),
                    repaired =>
                    {
                        if (outputFormat == OutputFormat.Human && !quiet)
                        {
                            context.Out.Write(ImageCheckRenderer.Repaired(repaired));
                        }
                    }).ConfigureAwait(false);
            }
            catch (NotSupportedException)
            {
                context.ReportError("This image format does not support checks");
                return 63;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException)
            {
                context.ReportError($"Check failed: {ErrorText.Describe(e)}");
                return 1;
            }

            if (!quiet)
            {
                context.Out.Write(outputFormat == OutputFormat.Human ? ImageCheckRenderer.ToHuman(report) : ImageCheckRenderer.ToJson(report));
            }

            CheckResult result = report.Result;
            if (result.CheckErrors != 0)
            {
                context.ReportError("Check failed");
                return 1;
            }

            return result.Corruptions != 0 ? 2 : result.Leaks != 0 ? 3 : 0;
        }
    }

    /// <summary>
    /// Prints a line of a check's report as qemu-img does: most are printed as they are, those QEMU reports with
    /// <c>error_report</c> get the program name. Advice to run a qemu-img command ("Use qemu-img amend …") names this
    /// program instead.
    /// </summary>
    internal static void WriteMessage(CommandContext context, CheckMessage message)
    {
        if (message.IsError)
        {
            context.ReportError(message.Text);
        }
        else
        {
            context.ReportVerbatim(message.Text);
        }
    }
}
