using Qimg.Formats;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Qimg.Options;

namespace Qimg.Cli;

/// <summary>
/// What a running subcommand works with: its arguments, the output writers, and qemu-img's ways of reporting
/// errors (<c>error_report</c>, <c>error_exit</c>, <c>missing_argument</c>…). One per invocation; nothing global.
/// </summary>
internal sealed class CommandContext
{
    private Getopt? _getopt;

    public CommandContext(CommandDefinition command, string[] args, TextWriter stdout, TextWriter stderr, string programName)
    {
        ProgramName = programName;
        Command = command;
        Args = args;
        Out = stdout;
        Error = stderr;
    }

    /// <summary>The name messages start with ("qimg", or "qemu-img" when installed under that name).</summary>
    public string ProgramName { get; }

    /// <summary>The command being run.</summary>
    public CommandDefinition Command { get; }

    /// <summary>The command's argument vector; index 0 is the command name (qemu-img's argv after the shift).</summary>
    public string[] Args { get; }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    /// <summary>The option scanner (created by the first <see cref="NextOption"/>).</summary>
    public Getopt Getopt => _getopt ??= new Getopt(Args, Command.ShortOptions, Command.LongOptions, Error);

    /// <summary>The argument of the option just returned by <see cref="NextOption"/>.</summary>
    public string OptArg => Getopt.OptArg ?? string.Empty;

    /// <summary>After the options: the operands, in order.</summary>
    public ReadOnlySpan<string> Operands => Args.AsSpan(Getopt.OptInd);

    /// <summary>
    /// The next option of the command line, with qemu-img's common handling done here: a missing argument and an
    /// unknown option end the command with qemu-img's messages, and -h/--help prints the help and exits 0.
    /// Returns -1 when the options are over.
    /// </summary>
    public int NextOption()
    {
        while (true)
        {
            int c = Getopt.Next();
            switch (c)
            {
                case ':':
                    throw ErrorExit($"missing argument for option '{Getopt.PreviousArgument}'");
                case '?':
                    if (!Command.ShortOptions.StartsWith(':'))
                    {
                        // Commands that let getopt print its own message (measure) show the help instead.
                        throw Help();
                    }

                    throw ErrorExit($"unrecognized option '{Getopt.PreviousArgument}'");
                case 'h':
                    throw Help();
                default:
                    return c;
            }
        }
    }

    /// <summary>Prints "qimg: message" on stderr (qemu's <c>error_report</c>).</summary>
    public void ReportError(string message)
    {
        Out.Flush();
        Error.Write($"{ProgramName}: {ProgramIdentity.Rename(message, ProgramName)}\n");
    }

    /// <summary>
    /// Prints a library warning: "qimg: warning: message" (qemu's <c>warn_report</c>), or the text as it is for the
    /// messages QEMU prints raw with fprintf (see <see cref="ImageOpenOptions.Warning"/>).
    /// </summary>
    public void ReportWarning(string message)
    {
        if (ImageOpenOptions.IsVerbatimWarning(message))
        {
            ReportVerbatim(message);
            return;
        }

        ReportError("warning: " + message);
    }

    /// <summary>Prints a line QEMU writes to stderr as it is (fprintf), without the program name.</summary>
    public void ReportVerbatim(string message)
    {
        Out.Flush();
        Error.Write(ProgramIdentity.Rename(message, ProgramName) + "\n");
    }

    /// <summary>qemu-img's <c>error_exit</c>: the message, the "Try --help" line, exit status 1. Throw the result.</summary>
    public CliExitException ErrorExit(string message)
    {
        Out.Flush();
        return CliApplication.ErrorExit(Error, ProgramName, message);
    }

    /// <summary>
    /// Adds the current <c>-o</c> argument to <paramref name="options"/> (qemu-img's accumulate_options), or reports
    /// its error and returns false.
    /// </summary>
    public bool TryAccumulateOptions(ref string? options)
    {
        try
        {
            options = OptionString.Accumulate(options, OptArg);
            return true;
        }
        catch (OptionException e)
        {
            Fail(e.Message);
            return false;
        }
    }

    /// <summary>The one image file name of info, map and check, or qemu-img's "Expecting one image file name" exit.</summary>
    public string SingleImageFileName()
    {
        if (Operands.Length != 1)
        {
            throw ErrorExit("Expecting one image file name");
        }

        return Operands[0];
    }

    /// <summary>Prints the help text on stdout; throw the result to exit 0.</summary>
    public CliExitException Help()
    {
        CommandTable.WriteHelp(Out, ProgramName);
        return new CliExitException(0);
    }

    /// <summary>Reports <paramref name="message"/> and returns exit status 1 (qemu-img's <c>error_report</c> + <c>return 1</c>).</summary>
    public int Fail(string message)
    {
        ReportError(message);
        return 1;
    }

    /// <summary>Reports an exception the way qemu-img would report the error behind it, with an optional prefix.</summary>
    public int Fail(Exception exception, string? prefix = null)
    {
        Out.Flush();
        Error.Write(ErrorReporter.Format(exception, ProgramName, prefix));
        if (Environment.GetEnvironmentVariable("QIMG_DEBUG") is { Length: > 0 })
        {
            // For maintainers: the whole story behind a one-line error.
            Error.Write(exception + "\n");
        }

        return 1;
    }

    /// <summary>The secrets defined with <c>--object</c> so far.</summary>
    public SecretStore Secrets { get; } = new();

    /// <summary>
    /// Processes an <c>--object</c> argument (QEMU's <c>user_creatable_process_cmdline</c>): defines the object, prints
    /// the help it asked for and exits 0, or reports the error and exits 1.
    /// </summary>
    public void ProcessObject(string definition)
    {
        string? help;
        try
        {
            help = UserObject.Process(definition, Secrets);
        }
        catch (OptionException e)
        {
            ReportError(e.Message);
            throw new CliExitException(1);
        }

        if (help is not null)
        {
            Out.Write(help);
            throw new CliExitException(0);
        }
    }

    /// <summary>
    /// qemu-img's <c>cvtnum_full</c>: a size argument between <paramref name="min"/> and <paramref name="max"/>, or null
    /// after reporting qemu-img's two-line error (the caller then exits 1).
    /// </summary>
    public long? ConvertNumber(string name, string value, long min = 0, long max = long.MaxValue)
    {
        QemuSize.ParseResult result = QemuSize.TryParse(value, 'B', out ulong number, ReportWarning);
        if (result == QemuSize.ParseResult.Invalid)
        {
            ReportError($"Invalid {name} specified. You may use k, M, G, T, P or E suffixes for");
            ReportError("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            return null;
        }

        if (result == QemuSize.ParseResult.OutOfRange || number > (ulong)max || (long)number < min)
        {
            ReportError(string.Create(CultureInfo.InvariantCulture, $"Invalid {name} specified. Must be between {min} and {max}."));
            return null;
        }

        return (long)number;
    }

    /// <summary>The parsed value of an <c>--output</c> argument, or exits like qemu-img for anything but human/json.</summary>
    public bool TryParseOutputFormat(string? output, out OutputFormat format, [NotNullWhen(false)] out string? error)
    {
        error = null;
        format = OutputFormat.Human;
        switch (output)
        {
            case null:
            case "human":
                return true;
            case "json":
                format = OutputFormat.Json;
                return true;
            default:
                error = "--output must be used with human or json as argument.";
                return false;
        }
    }
}

/// <summary>The two <c>--output</c> formats.</summary>
internal enum OutputFormat
{
    Human,
    Json,
}
