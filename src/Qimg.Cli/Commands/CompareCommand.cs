using Qimg.Block;
using Qimg.Cli.Output;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Compare;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2</c>.
/// Exit status: 0 identical, 1 different, 2 open error, 3 allocation-status error, 4 read error.
/// </summary>
internal static class CompareCommand
{
    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format1 = null;
        string? format2 = null;
        string cache = "writeback";
        bool progress = false;
        bool quiet = false;
        bool strict = false;
        bool forceShare = false;
        bool imageOpts = false;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'f':
                    format1 = context.OptArg;
                    break;
                case 'F':
                    format2 = context.OptArg;
                    break;
                case 'T':
                    cache = context.OptArg;
                    break;
                case 'p':
                    progress = true;
                    break;
                case 'q':
                    quiet = true;
                    break;
                case 's':
                    strict = true;
                    break;
                case 'U':
                    forceShare = true;
                    break;
                case CommandTable.OptionObject:
                    // qemu-img compare exits 2 (an open-style error) when an object cannot be created.
                    try
                    {
                        context.ProcessObject(context.OptArg);
                    }
                    catch (CliExitException e) when (e.ExitCode == 1)
                    {
                        return 2;
                    }

                    break;
                case CommandTable.OptionImageOpts:
                    imageOpts = true;
                    break;
            }
        }

        if (quiet)
        {
            progress = false;
        }

        ReadOnlySpan<string> operands = context.Operands;
        if (operands.Length != 2)
        {
            throw context.ErrorExit("Expecting two image file names");
        }

        string name1 = operands[0];
        string name2 = operands[1];
        using var printer = new ProgressPrinter(progress, 2.0f, context.Out, context.Error);
        try
        {
            if (!CacheMode.TryParse(cache, out CacheMode cacheMode))
            {
                context.ReportError($"Invalid source cache option: {cache}");
                return 2;
            }

            FormatNode? first = await OpenAsync(context, name1, format1, imageOpts, cacheMode, forceShare).ConfigureAwait(false);
            if (first is null)
            {
                return 2;
            }

            await using (first.ConfigureAwait(false))
            {
                FormatNode? second = await OpenAsync(context, name2, format2, imageOpts, cacheMode, forceShare).ConfigureAwait(false);
                if (second is null)
                {
                    return 2;
                }

                await using (second.ConfigureAwait(false))
                {
                    CompareResult result;
                    try
                    {
                        result = await ImageComparer.CompareAsync(first, second, new CompareOptions
                        {
                            Strict = strict,
                            Name1 = name1,
                            Name2 = name2,
                            Progress = printer,
                        }).ConfigureAwait(false);
                    }
                    catch (CompareException e)
                    {
                        context.ReportError(e.Message);
                        return e.ExitCode;
                    }

                    if (!quiet)
                    {
                        context.Out.Write(Render(result));
                    }

                    return result.AreIdentical ? 0 : 1;
                }
            }
        }
        finally
        {
            printer.End();
        }
    }

    private static string Render(CompareResult result)
    {
        string warning = result.SizeMismatch ? "Warning: Image size mismatch!\n" : string.Empty;
        return warning + result.Outcome switch
        {
            CompareOutcome.Identical => "Images are identical.\n",
            CompareOutcome.ContentMismatch => $"Content mismatch at offset {result.Offset}!\n",
            CompareOutcome.StrictSizeMismatch => "Strict mode: Image size mismatch!\n",
            _ => $"Strict mode: Offset {result.Offset} block status mismatch!\n",
        };
    }

    private static async ValueTask<FormatNode?> OpenAsync(CommandContext context, string name, string? format, bool imageOpts, CacheMode cache, bool forceShare)
    {
        if (!ImageOpener.TryGetSource(context, name, format, imageOpts, out ImageSource? source))
        {
            return null;
        }

        try
        {
            return await DiskImage.OpenAsync(source.FileName, ImageOpener.Options(context, forceShare) with
            {
                Format = source.Format,
                DriverOptions = source.DriverOptions,
                Cache = cache,
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            context.Fail(e, $"Could not open '{name}': ");
            return null;
        }
    }
}
