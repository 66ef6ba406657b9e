namespace Qimg.Cli;

/// <summary>
/// Ends the running command with <see cref="ExitCode"/> after its messages were written (qemu-img's <c>exit()</c>
/// calls deep inside option handling). Caught by <see cref="CliApplication.Run"/>; never escapes it.
/// </summary>
internal sealed class CliExitException : Exception
{
    public CliExitException(int exitCode)
        : base($"exit {exitCode}")
    {
        ExitCode = exitCode;
    }

    public int ExitCode { get; }
}
