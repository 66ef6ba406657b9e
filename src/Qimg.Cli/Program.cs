using Qimg.Cli.Output;

namespace Qimg.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        // Buffered stdout (map can print millions of lines; messages flush it before writing to stderr), unbuffered
        // stderr, both dropping output to a closed pipe as qemu-img does; plain descriptors (no terminal set-up).
        using var stdout = new StdioWriter(DescriptorStream.Open(1), 1 << 16, autoFlush: false);
        using var stderr = new StdioWriter(DescriptorStream.Open(2), 1 << 12, autoFlush: true);
        return CliApplication.Run(args, stdout, stderr, ProgramIdentity.FromProcess());
    }
}
