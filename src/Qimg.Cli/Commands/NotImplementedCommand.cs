namespace Qimg.Cli.Commands;

/// <summary>
/// The handler of subcommands whose operation has not landed yet: the options are scanned exactly as qemu-img scans
/// them (so option errors and -h behave the same), then the command fails with "qimg: NAME: not implemented yet".
/// </summary>
internal static class NotImplementedCommand
{
    public static ValueTask<int> RunAsync(CommandContext context)
    {
        if (context.Command.Name == "resize")
        {
            // qemu-img resize takes the size off the end of argv before scanning (so that "-1G" is not an option).
            if (context.Args.Length < 3)
            {
                throw context.ErrorExit("Not enough arguments");
            }

            context = new CommandContext(context.Command, context.Args[..^1], context.Out, context.Error, context.ProgramName);
        }

        while (context.NextOption() != -1)
        {
        }

        return ValueTask.FromResult(context.Fail($"{context.Command.Name}: not implemented yet"));
    }
}
