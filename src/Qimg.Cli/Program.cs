using System.Text;

namespace Qimg.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        // Buffered writers (map can print millions of lines); CliApplication flushes stdout before any stderr line.
        var encoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        using var stdout = new StreamWriter(Console.OpenStandardOutput(), encoding, 1 << 16) { AutoFlush = false, NewLine = "\n" };
        using var stderr = new StreamWriter(Console.OpenStandardError(), encoding, 1 << 12) { AutoFlush = true, NewLine = "\n" };
        try
        {
            return CliApplication.Run(args, stdout, stderr);
        }
        catch (IOException)
        {
            // stdout closed under us (EPIPE): nothing more can be said.
            return 1;
        }
    }
}
