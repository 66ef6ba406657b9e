namespace Qimg.Cli;

/// <summary>
/// The qemu-img compatible command line, runnable in-process: tests call <see cref="Run"/> with their own writers.
/// No process exit and no global mutable state, so several runs may proceed in parallel.
/// </summary>
internal static class CliApplication
{
    /// <summary>qimg's own version.</summary>
    public const string Version = "0.1.0";

    /// <summary>The qemu-img release whose behaviour qimg reproduces.</summary>
    public const string CompatibleQemuVersion = "7.2";

    private static readonly LongOption[] s_globalOptions =
    [
        new("help", ArgumentKind.None, 'h'),
        new("version", ArgumentKind.None, 'V'),
        new("trace", ArgumentKind.Required, 'T'),
    ];

    /// <summary>
    /// The qemu-img release whose version number qimg reports under the name qemu-img, for scripts that parse
    /// qemu-img's version line (Debian's 7.2 packages are 7.2.x).
    /// </summary>
    public const string CompatibleQemuFullVersion = "7.2.22";

    /// <summary>Runs qimg with <paramref name="args"/> (without the program name) and returns the exit status.</summary>
    /// <param name="args">The arguments after the program name.</param>
    /// <param name="stdout">Standard output.</param>
    /// <param name="stderr">Standard error.</param>
    /// <param name="programName">The name messages start with: the basename of the invoked program (see <see cref="ProgramIdentity"/>).</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, string programName = ProgramIdentity.DefaultName)
    {
        try
        {
            return RunAsync(args, stdout, stderr, programName).AsTask().GetAwaiter().GetResult();
        }
        catch (CliExitException exit)
        {
            return exit.ExitCode;
        }
        catch (Exception e)
        {
            // Last resort: one line, never a stack trace.
            string message;
            try
            {
                stdout.Flush();
                message = ErrorReporter.Format(e, programName);
            }
            catch (Exception inner)
            {
                message = $"{programName}: {e.GetType().Name}: {inner.GetType().Name}\n";
            }

            stderr.Write(message);
            return 1;
        }
        finally
        {
            stdout.Flush();
            stderr.Flush();
        }
    }

    private static async ValueTask<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, string programName)
    {
        if (args.Length < 1)
        {
            throw ErrorExit(stderr, programName, "Not enough arguments");
        }

        string[] argv = [programName, .. args];
        var getopt = new Getopt(argv, "+:hVT:", s_globalOptions, stderr);
        int c;
        while ((c = getopt.Next()) != -1)
        {
            switch (c)
            {
                case ':':
                    throw ErrorExit(stderr, programName, $"missing argument for option '{getopt.PreviousArgument}'");
                case '?':
                    throw ErrorExit(stderr, programName, $"unrecognized option '{getopt.PreviousArgument}'");
                case 'h':
                    CommandTable.WriteHelp(stdout, programName);
                    return 0;
                case 'V':
                    stdout.Write(CommandTable.VersionText(programName));
                    return 0;
                case 'T':
                    TraceOptions.Process(getopt.OptArg ?? string.Empty, stdout, stderr, programName);
                    break;
            }
        }

        if (getopt.OptInd >= argv.Length)
        {
            // qemu-img: nothing left after the global options is a silent success.
            return 0;
        }

        string commandName = argv[getopt.OptInd];
        string[] commandArgs = argv[getopt.OptInd..];
        CommandDefinition? command = CommandTable.Find(commandName);
        if (command is null)
        {
            throw ErrorExit(stderr, programName, $"Command not found: {commandName}");
        }

        var context = new CommandContext(command, commandArgs, stdout, stderr, programName);
        return await command.Handler(context).ConfigureAwait(false);
    }

    /// <summary>qemu-img's <c>error_exit</c>: message, "Try --help" hint, exit status 1.</summary>
    public static CliExitException ErrorExit(TextWriter stderr, string programName, string message)
    {
        stderr.Write($"{programName}: {message}\n");
        stderr.Write($"Try '{programName} --help' for more information\n");
        return new CliExitException(1);
    }
}
