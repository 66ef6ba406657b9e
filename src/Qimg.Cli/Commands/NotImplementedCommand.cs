namespace Qimg.Cli.Commands;

/// <summary>
/// The handler of subcommands whose operation has not landed yet: the options are scanned exactly as qemu-img scans
/// them (so option errors and -h behave the same), then the command fails with "qimg: NAME: not implemented yet".
/// </summary>
internal static class NotImplementedCommand
{
    public static ValueTask<int> RunAsync(CommandContext context)
    {
        while (context.NextOption() != -1)
        {
        }

        return ValueTask.FromResult(context.Fail($"{context.Command.Name}: not implemented yet"));
    }
}
