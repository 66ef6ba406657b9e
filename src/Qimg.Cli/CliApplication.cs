namespace Qimg.Cli;

/// <summary>
/// The qemu-img compatible command line, runnable in-process (tests call <see cref="Run"/> with their own writers).
/// </summary>
internal static class CliApplication
{
    /// <summary>The name qimg uses in its messages (qemu-img uses its own argv[0] the same way).</summary>
    public const string ProgramName = "qimg";

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0)
        {
            stderr.WriteLine($"{ProgramName}: Not enough arguments");
            stderr.WriteLine($"Try '{ProgramName} --help' for more information");
            return 1;
        }

        stderr.WriteLine($"{ProgramName}: {args[0]}: not implemented yet");
        return 1;
    }
}
