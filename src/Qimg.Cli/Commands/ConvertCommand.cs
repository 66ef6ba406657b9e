using System.Globalization;
using Qimg.Block;
using Qimg.Cli.Output;
using Qimg.Copy;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Convert;
using Qimg.Operations.Create;
using Qimg.Options;

namespace Qimg.Cli.Commands;

/// <summary>
/// <c>convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] [--bitmaps] [-U] [-C] [-c]
/// [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options]
/// [-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] [--salvage] filename [filename2 [...]]
/// output_filename</c>
/// </summary>
internal static class ConvertCommand
{
    private const int MaxBufferSectors = 32768;

    public static async ValueTask<int> RunAsync(CommandContext context)
    {
        string? format = null;
        string? outputFormat = null;
        string? backingFile = null;
        string? backingFormat = null;
        string? options = null;
        string targetCache = "unsafe";
        string sourceCache = "writeback";
        SnapshotSelector? snapshot = null;
        bool copyOffload = false;
        bool compressed = false;
        bool progress = false;
        bool quiet = false;
        bool skipCreate = false;
        bool forceShare = false;
        bool imageOpts = false;
        bool targetImageOpts = false;
        bool salvage = false;
        bool targetIsZero = false;
        bool bitmaps = false;
        bool skipBroken = false;
        bool explicitMinSparse = false;
        bool writeInOrder = true;
        int minSparse = 4096;
        int workers = 8;
        long rateLimit = 0;
        int c;
        while ((c = context.NextOption()) != -1)
        {
            switch (c)
            {
                case 'f':
                    format = context.OptArg;
                    break;
                case 'O':
                    outputFormat = context.OptArg;
                    break;
                case 'B':
                    backingFile = context.OptArg;
                    break;
                case 'C':
                    copyOffload = true;
                    break;
                case 'c':
                    compressed = true;
                    break;
                case 'F':
                    backingFormat = context.OptArg;
                    break;
                case 'o':
                    if (!context.TryAccumulateOptions(ref options))
                    {
                        return 1;
                    }

                    break;
                case 'l':
                    if (!TryParseSnapshot(context, context.OptArg, out snapshot))
                    {
                        return 1;
                    }

                    break;
                case 's':
                    // The old "-s snapshot_id" (removed from qemu-img in QEMU 5.0): an ID or a name, like "-l NAME".
                    snapshot = new SnapshotSelector(context.OptArg, null, IdOrName: true);
                    break;
                case 'S':
                    if (context.ConvertNumber("buffer size for sparse output", context.OptArg) is not long sparse)
                    {
                        return 1;
                    }

                    if (sparse % 512 != 0 || sparse / 512 > MaxBufferSectors)
                    {
                        return context.Fail(
                            "Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to " +
                            $"{MaxBufferSectors * 512}. Select 0 to disable sparse detection (fully allocates output).");
                    }

                    minSparse = (int)sparse;
                    explicitMinSparse = true;
                    break;
                case 'p':
                    progress = true;
                    break;
                case 't':
                    targetCache = context.OptArg;
                    break;
                case 'T':
                    sourceCache = context.OptArg;
                    break;
                case 'q':
                    quiet = true;
                    break;
                case 'n':
                    skipCreate = true;
                    break;
                case 'm':
                    if (!TryParseLong(context.OptArg, out long count) || count < 1 || count > CopyOptions.MaxWorkers)
                    {
                        return context.Fail($"Invalid number of coroutines. Allowed number of coroutines is between 1 and {CopyOptions.MaxWorkers}");
                    }

                    workers = (int)count;
                    break;
                case 'W':
                    writeInOrder = false;
                    break;
                case 'U':
                    forceShare = true;
                    break;
                case 'r':
                    if (context.ConvertNumber("rate limit", context.OptArg) is not long rate)
                    {
                        return 1;
                    }

                    rateLimit = rate;
                    break;
                case CommandTable.OptionObject:
                    context.ProcessObject(context.OptArg);
                    break;
                case CommandTable.OptionImageOpts:
                    imageOpts = true;
                    break;
                case CommandTable.OptionSalvage:
                    salvage = true;
                    break;
                case CommandTable.OptionTargetImageOpts:
                    targetImageOpts = true;
                    break;
                case CommandTable.OptionTargetIsZero:
                    targetIsZero = true;
                    break;
                case CommandTable.OptionBitmaps:
                    bitmaps = true;
                    break;
                case CommandTable.OptionSkipBroken:
                    skipBroken = true;
                    break;
            }
        }

        if (outputFormat is null && !targetImageOpts)
        {
            outputFormat = "raw";
        }

        if (skipBroken && !bitmaps)
        {
            return context.Fail("Use of --skip-broken-bitmaps requires --bitmaps");
        }

        if (compressed && copyOffload)
        {
            return context.Fail("Cannot enable copy offloading when -c is used");
        }

        if (explicitMinSparse && copyOffload)
        {
            return context.Fail("Cannot enable copy offloading when -S is used");
        }

        if (copyOffload && salvage)
        {
            return context.Fail("Cannot use copy offloading in salvaging mode");
        }

        if (targetImageOpts && !skipCreate)
        {
            return context.Fail("--target-image-opts requires use of -n flag");
        }

        if (skipCreate && options is not null)
        {
            return context.Fail("-o has no effect when skipping image creation");
        }

        if (targetIsZero && !skipCreate)
        {
            return context.Fail("--target-is-zero requires use of -n flag");
        }

        ReadOnlySpan<string> operands = context.Operands;
        string? target = operands.Length >= 2 ? operands[^1] : null;
        if (options is not null && OptionString.HasHelpOption(options))
        {
            if (outputFormat is null)
            {
                return context.Fail("Option help requires a format be specified");
            }

            try
            {
                context.Out.Write(ImageCreator.GetOptionHelp(outputFormat, target));
                return 0;
            }
            catch (OperationException e)
            {
                return context.Fail(e);
            }
        }

        if (target is null)
        {
            return context.Fail("Must specify image file name");
        }

        if (!CacheMode.TryParse(sourceCache, out CacheMode sourceCacheMode))
        {
            return context.Fail($"Invalid source cache option: {sourceCache}");
        }

        using var progressPrinter = new ProgressPrinter(progress && !quiet, 1.0f, context.Out, context.Error);
        progressPrinter.Report(0);
        var request = new ConvertImageOptions
        {
            Sources = operands[..^1].ToArray(),
            SourceFormat = format,
            OpenSource = (name, open, cancellationToken) => OpenAsync(context, name, format, imageOpts, open, cancellationToken),
            Target = target,
            TargetFormat = outputFormat,
            OpenTarget = targetImageOpts
                ? (name, open, cancellationToken) => OpenAsync(context, name, null, true, open, cancellationToken)
                : null,
            CreateOptions = options,
            BackingFile = backingFile,
            BackingFormat = backingFormat,
            SkipCreate = skipCreate,
            TargetIsZero = targetIsZero,
            TargetCacheMode = targetCache,
            SourceCache = sourceCacheMode,
            ForceShare = forceShare,
            Snapshot = snapshot,
            Bitmaps = bitmaps,
            SkipBrokenBitmaps = skipBroken,
            Copy = new CopyOptions
            {
                MinSparse = minSparse,
                Compressed = compressed,
                Workers = workers,
                WriteInOrder = writeInOrder,
                Salvage = salvage,
                CopyOffload = copyOffload,
                RateLimit = rateLimit,
                Progress = progressPrinter,
                Warning = quiet ? null : context.ReportWarning,
            },
            Warning = context.ReportWarning,
            Message = context.ReportVerbatim,
        };

        try
        {
            await ImageConverter.ConvertAsync(request).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not CliExitException)
        {
            int status = context.Fail(e);
            progressPrinter.End();
            return status;
        }

        progressPrinter.Report(100);
        progressPrinter.End();
        return 0;
    }

    private static async ValueTask<FormatNode> OpenAsync(CommandContext context, string name, string? format, bool imageOpts, ImageOpenOptions open, CancellationToken cancellationToken)
    {
        // Refuses --image-opts with -f when it opens the first source, as qemu-img's img_open does.
        ImageSource source = ImageOpener.GetSource(context, name, format, imageOpts);
        return await DiskImage.OpenAsync(source.FileName, open with
        {
            Format = source.Format ?? open.Format,
            DriverOptions = source.DriverOptions,
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>-l</c>: "snapshot.id=ID,snapshot.name=NAME" (QEMU's internal_snapshot_opts) or a bare ID or name.
    /// </summary>
    internal static bool TryParseSnapshot(CommandContext context, string text, out SnapshotSelector? snapshot)
    {
        snapshot = null;
        if (!text.StartsWith("snapshot.", StringComparison.Ordinal))
        {
            snapshot = new SnapshotSelector(text, null, IdOrName: true);
            return true;
        }

        string? id = null;
        string? name = null;
        try
        {
            foreach (OptionPair pair in OptionString.Split(text, null, out _))
            {
                switch (pair.Name)
                {
                    case "snapshot.id":
                        id = pair.Value;
                        break;
                    case "snapshot.name":
                        name = pair.Value;
                        break;
                    default:
                        throw new OptionException($"Invalid parameter '{pair.Name}'");
                }
            }
        }
        catch (OptionException e)
        {
            context.ReportError(e.Message);
            context.ReportError($"Failed in parsing snapshot param '{text}'");
            return false;
        }

        snapshot = new SnapshotSelector(id, name);
        return true;
    }

    /// <summary>qemu_strtol with base 0: the whole string is a decimal, 0x hex or 0 octal number.</summary>
    private static bool TryParseLong(string text, out long value)
    {
        value = 0;
        string body = text.TrimStart(' ', '\t', '\n', '\v', '\f', '\r');
        bool negative = false;
        if (body.StartsWith('-') || body.StartsWith('+'))
        {
            negative = body[0] == '-';
            body = body[1..];
        }

        bool ok;
        if (body.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && body.Length > 2)
        {
            ok = long.TryParse(body.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && value >= 0;
        }
        else if (body.Length > 1 && body[0] == '0')
        {
            ok = body.All(static ch => ch is >= '0' and <= '7');
            if (ok)
            {
                try
                {
                    value = Convert.ToInt64(body, 8);
                }
                catch (OverflowException)
                {
                    ok = false;
                }
            }
        }
        else
        {
            ok = body.Length > 0 && body.All(char.IsAsciiDigit) && long.TryParse(body, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        }

        if (negative)
        {
            value = -value;
        }

        return ok;
    }
}
