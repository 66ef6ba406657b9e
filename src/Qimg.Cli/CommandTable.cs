using Qimg.Cli.Commands;
using Qimg.Formats;

namespace Qimg.Cli;

/// <summary>A subcommand: its name, usage line, option syntax (as qemu-img passes it to getopt_long) and handler.</summary>
/// <param name="Name">The subcommand name ("create").</param>
/// <param name="Usage">The usage line of the help text.</param>
/// <param name="ShortOptions">The getopt option string, exactly qemu-img's (a leading ':' means qemu-img reports option errors itself).</param>
/// <param name="LongOptions">The long options, exactly qemu-img's.</param>
/// <param name="Handler">Runs the command and returns the exit status.</param>
internal sealed record CommandDefinition(
    string Name,
    string Usage,
    string ShortOptions,
    LongOption[] LongOptions,
    Func<CommandContext, ValueTask<int>> Handler);

/// <summary>
/// The single source for qimg's subcommands: names, usage strings, option syntax, handlers and the help text
/// (qemu-img's <c>qemu-img-cmds.hx</c> and <c>help()</c>). Commands are listed in qemu-img's order.
/// </summary>
internal static class CommandTable
{
    /// <summary>Option values above 255, as qemu-img numbers its long-only options.</summary>
    public const int OptionOutput = 256;
    public const int OptionBackingChain = 257;
    public const int OptionObject = 258;
    public const int OptionImageOpts = 259;
    public const int OptionPattern = 260;
    public const int OptionFlushInterval = 261;
    public const int OptionNoDrain = 262;
    public const int OptionTargetImageOpts = 263;
    public const int OptionSize = 264;
    public const int OptionPreallocation = 265;
    public const int OptionShrink = 266;
    public const int OptionSalvage = 267;
    public const int OptionTargetIsZero = 268;
    public const int OptionAdd = 269;
    public const int OptionRemove = 270;
    public const int OptionClear = 271;
    public const int OptionEnable = 272;
    public const int OptionDisable = 273;
    public const int OptionMerge = 274;
    public const int OptionBitmaps = 275;
    public const int OptionForce = 276;
    public const int OptionSkipBroken = 277;

    private static readonly LongOption Help = new("help", ArgumentKind.None, 'h');
    private static readonly LongOption Object = new("object", ArgumentKind.Required, OptionObject);
    private static readonly LongOption ImageOpts = new("image-opts", ArgumentKind.None, OptionImageOpts);
    private static readonly LongOption ForceShare = new("force-share", ArgumentKind.None, 'U');
    private static readonly LongOption Format = new("format", ArgumentKind.Required, 'f');
    private static readonly LongOption Output = new("output", ArgumentKind.Required, OptionOutput);

    /// <summary>Every subcommand, in qemu-img's order.</summary>
    public static IReadOnlyList<CommandDefinition> Commands { get; } =
    [
        new("amend",
            "amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename",
            ":ho:f:t:pq",
            [Help, Object, ImageOpts, new("force", ArgumentKind.None, OptionForce)],
            NotImplementedCommand.RunAsync),
        new("bench",
            "bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename",
            ":hc:d:f:ni:o:qs:S:t:wU",
            [
                Help,
                new("flush-interval", ArgumentKind.Required, OptionFlushInterval),
                ImageOpts,
                new("pattern", ArgumentKind.Required, OptionPattern),
                new("no-drain", ArgumentKind.None, OptionNoDrain),
                ForceShare,
            ],
            NotImplementedCommand.RunAsync),
        new("bitmap",
            "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap",
            ":b:f:F:g:h",
            [
                Help,
                Object,
                ImageOpts,
                new("add", ArgumentKind.None, OptionAdd),
                new("remove", ArgumentKind.None, OptionRemove),
                new("clear", ArgumentKind.None, OptionClear),
                new("enable", ArgumentKind.None, OptionEnable),
                new("disable", ArgumentKind.None, OptionDisable),
                new("merge", ArgumentKind.Required, OptionMerge),
                new("granularity", ArgumentKind.Required, 'g'),
                new("source-file", ArgumentKind.Required, 'b'),
                new("source-format", ArgumentKind.Required, 'F'),
            ],
            BitmapCommand.RunAsync),
        new("check",
            "check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename",
            ":hf:r:T:qU",
            [Help, Format, new("repair", ArgumentKind.Required, 'r'), Output, Object, ImageOpts, ForceShare],
            CheckCommand.RunAsync),
        new("commit",
            "commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename",
            ":f:ht:b:dpqr:",
            [Help, Object, ImageOpts],
            NotImplementedCommand.RunAsync),
        new("compare",
            "compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2",
            ":hf:F:T:pqsU",
            [Help, Object, ImageOpts, ForceShare],
            CompareCommand.RunAsync),
        new("convert",
            "convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] [--bitmaps] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] [--salvage] filename [filename2 [...]] output_filename",
            // qemu-img 7.2's option string plus "s:", the old "-s snapshot_id" that QEMU 5.0 removed and qimg keeps.
            ":hf:O:B:CcF:o:l:s:S:pt:T:qnm:WUr:",
            [
                Help,
                Object,
                ImageOpts,
                ForceShare,
                new("target-image-opts", ArgumentKind.None, OptionTargetImageOpts),
                new("salvage", ArgumentKind.None, OptionSalvage),
                new("target-is-zero", ArgumentKind.None, OptionTargetIsZero),
                new("bitmaps", ArgumentKind.None, OptionBitmaps),
                new("skip-broken-bitmaps", ArgumentKind.None, OptionSkipBroken),
            ],
            ConvertCommand.RunAsync),
        new("create",
            "create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]",
            ":F:b:f:ho:qu",
            [Help, Object],
            CreateCommand.RunAsync),
        new("dd",
            "dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output",
            ":hf:O:U",
            [Help, Object, ImageOpts, ForceShare],
            DdCommand.RunAsync),
        new("info",
            "info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename",
            ":f:hU",
            [Help, Format, Output, new("backing-chain", ArgumentKind.None, OptionBackingChain), Object, ImageOpts, ForceShare],
            InfoCommand.RunAsync),
        new("map",
            "map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename",
            ":f:s:l:hU",
            [
                Help,
                Format,
                Output,
                Object,
                ImageOpts,
                ForceShare,
                new("start-offset", ArgumentKind.Required, 's'),
                new("max-length", ArgumentKind.Required, 'l'),
            ],
            MapCommand.RunAsync),
        new("measure",
            "measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]",
            // qemu-img 7.2 passes no leading ':' here, so getopt prints its own messages and '?' shows the help.
            "hf:O:o:l:U",
            [Help, ImageOpts, Object, Output, new("size", ArgumentKind.Required, OptionSize), ForceShare],
            MeasureCommand.RunAsync),
        new("snapshot",
            "snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename",
            ":la:c:d:hqU",
            [Help, Object, ImageOpts, ForceShare],
            NotImplementedCommand.RunAsync),
        new("rebase",
            "rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename",
            ":hf:F:b:upt:T:qU",
            [Help, Object, ImageOpts, ForceShare],
            NotImplementedCommand.RunAsync),
        new("resize",
            "resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size",
            ":f:hq",
            [Help, Object, ImageOpts, new("preallocation", ArgumentKind.Required, OptionPreallocation), new("shrink", ArgumentKind.None, OptionShrink)],
            ResizeCommand.RunAsync),
    ];

    /// <summary>The command called <paramref name="name"/> (exact match, as qemu-img), or null.</summary>
    public static CommandDefinition? Find(string name)
    {
        foreach (CommandDefinition command in Commands)
        {
            if (command.Name == name)
            {
                return command;
            }
        }

        return null;
    }

    /// <summary>
    /// The <c>-V</c> text. Under the name qemu-img (a drop-in install), the first line is one that scripts parsing
    /// qemu-img's version accept, "qemu-img version 7.2.22 (qimg 0.1.0)", followed by qemu-img's copyright line;
    /// under any other name, qimg's own version.
    /// </summary>
    public static string VersionText(string programName) => programName == ProgramIdentity.QemuImgName
        ? $"qemu-img version {CliApplication.CompatibleQemuFullVersion} (qimg {CliApplication.Version})\n" +
          "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n"
        : $"{programName} version {CliApplication.Version} (compatible with qemu-img version {CliApplication.CompatibleQemuVersion})\n" +
          "A C# rebuild of QEMU's disk image utility; qemu-img is Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";

    /// <summary>Writes qemu-img's help text, with the program's name and qimg's own list of supported formats.</summary>
    public static void WriteHelp(TextWriter writer, string programName)
    {
        var text = new System.Text.StringBuilder();
        text.Append(VersionText(programName));
        text.Append($"usage: {programName} [standard options] command [command options]\n");
        text.Append(
            "QEMU disk image utility\n" +
            "\n" +
            "    '-h', '--help'       display this help and exit\n" +
            "    '-V', '--version'    output version information and exit\n" +
            "    '-T', '--trace'      [[enable=]<pattern>][,events=<file>][,file=<file>]\n" +
            "                         specify tracing options\n" +
            "\n" +
            "Command syntax:\n");
        foreach (CommandDefinition command in Commands)
        {
            text.Append("  ").Append(command.Usage).Append('\n');
        }

        text.Append(
            "\n" +
            "Command parameters:\n" +
            "  'filename' is a disk image filename\n" +
            "  'objectdef' is a QEMU user creatable object definition. See the qemu(1)\n" +
            "    manual page for a description of the object properties. The most common\n" +
            "    object type is a 'secret', which is used to supply passwords and/or\n" +
            "    encryption keys.\n" +
            "  'fmt' is the disk image format. It is guessed automatically in most cases\n" +
            "  'cache' is the cache mode used to write the output disk image, the valid\n" +
            "    options are: 'none', 'writeback' (default, except for convert), 'writethrough',\n" +
            "    'directsync' and 'unsafe' (default for convert)\n" +
            "  'src_cache' is the cache mode used to read input disk images, the valid\n" +
            "    options are the same as for the 'cache' option\n" +
            "  'size' is the disk image size in bytes. Optional suffixes\n" +
            "    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, 1024M),\n" +
            "    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)  are\n" +
            "    supported. 'b' is ignored.\n" +
            "  'output_filename' is the destination disk image filename\n" +
            "  'output_fmt' is the destination format\n" +
            "  'options' is a comma separated list of format specific options in a\n" +
            "    name=value format. Use -o help for an overview of the options supported by\n" +
            "    the used format\n" +
            "  'snapshot_param' is param used for internal snapshot, format\n" +
            "    is 'snapshot.id=[ID],snapshot.name=[NAME]', or\n" +
            "    '[ID_OR_NAME]'\n" +
            "  '-c' indicates that target image must be compressed (qcow format only)\n" +
            "  '-u' allows unsafe backing chains. For rebasing, it is assumed that old and\n" +
            "       new backing file match exactly. The image doesn't need a working\n" +
            "       backing file before rebasing in this case (useful for renaming the\n" +
            "       backing file). For image creation, allow creating without attempting\n" +
            "       to open the backing file.\n" +
            "  '-h' with or without a command shows this help and lists the supported formats\n" +
            "  '-p' show progress of command (only certain commands)\n" +
            "  '-q' use Quiet mode - do not print any output (except errors)\n" +
            "  '-S' indicates the consecutive number of bytes (defaults to 4k) that must\n" +
            "       contain only zeros for " + programName + " to create a sparse image during\n" +
            "       conversion. If the number of bytes is 0, the source will not be scanned for\n" +
            "       unallocated or zero sectors, and the destination image will always be\n" +
            "       fully allocated\n" +
            "  '--output' takes the format in which the output must be done (human or json)\n" +
            "  '-n' skips the target volume creation (useful if the volume is created\n" +
            "       prior to running " + programName + ")\n" +
            "\n" +
            "Parameters to bitmap subcommand:\n" +
            "  'bitmap' is the name of the bitmap to manipulate, through one or more\n" +
            "       actions from '--add', '--remove', '--clear', '--enable', '--disable',\n" +
            "       or '--merge source'\n" +
            "  '-g granularity' sets the granularity for '--add' actions\n" +
            "  '-b source' and '-F src_fmt' tell '--merge' actions to find the source\n" +
            "       bitmaps from an alternative file\n" +
            "\n" +
            "Parameters to check subcommand:\n" +
            "  '-r' tries to repair any inconsistencies that are found during the check.\n" +
            "       '-r leaks' repairs only cluster leaks, whereas '-r all' fixes all\n" +
            "       kinds of errors, with a higher risk of choosing the wrong fix or\n" +
            "       hiding corruption that has already occurred.\n" +
            "\n" +
            "Parameters to convert subcommand:\n" +
            "  '--bitmaps' copies all top-level persistent bitmaps to destination\n" +
            "  '-m' specifies how many coroutines work in parallel during the convert\n" +
            "       process (defaults to 8)\n" +
            "  '-W' allow to write to the target out of order rather than sequential\n" +
            "\n" +
            "Parameters to snapshot subcommand:\n" +
            "  'snapshot' is the name of the snapshot to create, apply or delete\n" +
            "  '-a' applies a snapshot (revert disk to saved state)\n" +
            "  '-c' creates a snapshot\n" +
            "  '-d' deletes a snapshot\n" +
            "  '-l' lists all snapshots in the given image\n" +
            "\n" +
            "Parameters to compare subcommand:\n" +
            "  '-f' first image format\n" +
            "  '-F' second image format\n" +
            "  '-s' run in Strict mode - fail on different image size or sector allocation\n" +
            "\n" +
            "Parameters to dd subcommand:\n" +
            "  'bs=BYTES' read and write up to BYTES bytes at a time (default: 512)\n" +
            "  'count=N' copy only N input blocks\n" +
            "  'if=FILE' read from FILE\n" +
            "  'of=FILE' write to FILE\n" +
            "  'skip=N' skip N bs-sized blocks at the start of input\n");

        text.Append("\nSupported formats:");
        foreach (string name in SupportedFormatNames())
        {
            text.Append(' ').Append(name);
        }

        text.Append("\n\n");
        // Whatever it is called, the program is qimg: its bugs are not QEMU's.
        text.Append("qimg is not part of QEMU: report its bugs to the qimg project, not to QEMU.\n");
        text.Append("More information on the QEMU project at <https://qemu.org>.\n");
        writer.Write(text.ToString());
    }

    /// <summary>
    /// The formats and protocols qimg can open, sorted by name as qemu-img lists its drivers. Formats qimg only
    /// recognises when probing are left out: they are not supported.
    /// </summary>
    public static IEnumerable<string> SupportedFormatNames()
    {
        FormatRegistry registry = FormatRegistry.Default;
        var names = new SortedSet<string>(StringComparer.Ordinal);
        foreach (FormatDriver format in registry.Formats)
        {
            if (format.IsImplemented)
            {
                names.Add(format.Name);
            }
        }

        foreach (Protocols.ProtocolDriver protocol in registry.Protocols)
        {
            names.Add(protocol.Name);
        }

        return names;
    }
}
