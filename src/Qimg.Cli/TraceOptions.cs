using Qimg.Options;

namespace Qimg.Cli;

/// <summary>
/// The global <c>-T</c>/<c>--trace</c> option. qimg has no trace events, so patterns are accepted and, as QEMU does for
/// an event name it does not know, named events get a warning; a pattern with '*' matches nothing silently.
/// </summary>
internal static class TraceOptions
{
    private static readonly OptionDescriptor[] s_descriptors =
    [
        new("enable", OptionType.String, string.Empty),
        new("events", OptionType.String, string.Empty),
        new("file", OptionType.String, string.Empty),
    ];

    public static void Process(string argument, TextWriter stdout, TextWriter stderr, string programName)
    {
        IReadOnlyList<OptionPair> pairs = OptionString.Split(argument, "enable", out bool helpWanted,
            flagWarning: message => stderr.Write($"{programName}: warning: {message}\n"));
        if (helpWanted)
        {
            stdout.Write("trace options:\n" + OptionList.FormatHelp(s_descriptors));
            throw new CliExitException(1);
        }

        var values = new OptionValues();
        foreach (OptionPair pair in pairs)
        {
            if (pair.Name == "id")
            {
                continue;
            }

            try
            {
                OptionString.Set(values, pair.Name, pair.Value, s_descriptors);
            }
            catch (OptionException e)
            {
                stderr.Write($"{programName}: {e.Message}\n");
                throw new CliExitException(1);
            }
        }

        if (values.GetString("enable") is string enable)
        {
            if (OptionString.IsHelpOption(enable))
            {
                // QEMU lists its trace events and exits; qimg has none.
                throw new CliExitException(0);
            }

            Enable(enable, stderr, programName);
        }

        if (values.GetString("events") is string eventsFile)
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(eventsFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // QEMU reports it with the file as location and no space: "qemu-img:FILE: message".
                stderr.Write($"{programName}:{eventsFile}: {ErrorReporter.Describe(e)}\n");
                throw new CliExitException(1);
            }

            foreach (string line in lines)
            {
                if (line.Length != 0 && line[0] != '#')
                {
                    Enable(line, stderr, programName);
                }
            }
        }
    }

    private static void Enable(string pattern, TextWriter stderr, string programName)
    {
        string name = pattern.StartsWith('-') ? pattern[1..] : pattern;
        if (!name.Contains('*'))
        {
            stderr.Write($"{programName}: warning: trace event '{name}' does not exist\n");
        }
    }
}
