namespace Qimg.Cli;

/// <summary>
/// The qemu-img compatible command line, runnable in-process: tests call <see cref="Run"/> with their own writers.
/// No process exit and no global mutable state, so several runs may proceed in parallel.
/// </summary>
internal static class CliApplication
{
    /// <summary>The name qimg uses in its messages (qemu-img uses its own argv[0] the same way).</summary>
    public const string ProgramName = "qimg";

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

    /// <summary>Runs qimg with <paramref name="args"/> (without the program name) and returns the exit status.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            return RunAsync(args, stdout, stderr).AsTask().GetAwaiter().GetResult();
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
                message = ErrorReporter.Format(e);
            }
            catch (Exception inner)
            {
                message = $"{ProgramName}: {e.GetType().Name}: {inner.GetType().Name}\n";
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

    private static async ValueTask<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length < 1)
        {
            throw ErrorExit(stderr, "Not enough arguments");
        }

        string[] argv = [ProgramName, .. args];
        var getopt = new Getopt(argv, "+:hVT:", s_globalOptions, stderr);
        int c;
        while ((c = getopt.Next()) != -1)
        {
            switch (c)
            {
                case ':':
                    throw ErrorExit(stderr, $"missing argument for option '{getopt.PreviousArgument}'");
                case '?':
                    throw ErrorExit(stderr, $"unrecognized option '{getopt.PreviousArgument}'");
                case 'h':
                    CommandTable.WriteHelp(stdout);
                    return 0;
                case 'V':
                    stdout.Write(CommandTable.VersionText);
                    return 0;
                case 'T':
                    TraceOptions.Process(getopt.OptArg ?? string.Empty, stdout, stderr);
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
            throw ErrorExit(stderr, $"Command not found: {commandName}");
        }

        var context = new CommandContext(command, commandArgs, stdout, stderr);
        return await command.Handler(context).ConfigureAwait(false);
    }

    /// <summary>qemu-img's <c>error_exit</c>: message, "Try --help" hint, exit status 1.</summary>
    public static CliExitException ErrorExit(TextWriter stderr, string message)
    {
        stderr.Write($"{ProgramName}: {message}\n");
        stderr.Write($"Try '{ProgramName} --help' for more information\n");
        return new CliExitException(1);
    }
}
