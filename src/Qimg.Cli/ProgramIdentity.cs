namespace Qimg.Cli;

/// <summary>
/// The name qimg goes by in its messages. QEMU's tools name themselves after <c>argv[0]</c> (its basename): installed
/// as <c>qemu-img</c> through a link, as a drop-in install does, qimg says <c>qemu-img: …</c> everywhere, so that
/// scripts and iotests filters written against qemu-img keep working; run as <c>qimg</c>, it says <c>qimg: …</c>.
/// </summary>
internal static class ProgramIdentity
{
    /// <summary>qimg's own name, also the fallback when the invoked name cannot be found.</summary>
    public const string DefaultName = "qimg";

    /// <summary>The name of the tool qimg stands in for.</summary>
    public const string QemuImgName = "qemu-img";

    /// <summary>
    /// The basename of the program as the user invoked it. .NET's own answers do not give it: an apphost or Native AOT
    /// binary run through a symbolic link reports the link's target (<see cref="Environment.ProcessPath"/>) or the
    /// managed assembly (<see cref="Environment.GetCommandLineArgs"/>). The kernel keeps the argv[0] the shell passed
    /// in /proc/self/cmdline; under the dotnet host (<c>dotnet qimg.dll</c>) that is "dotnet", and the name is the
    /// assembly's.
    /// </summary>
    public static string FromProcess()
    {
        string? processPath = Environment.ProcessPath;
        bool dotnetHost = processPath is not null
            && Path.GetFileNameWithoutExtension(processPath).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        if (!dotnetHost && OperatingSystem.IsLinux() && ReadArgv0() is string argv0)
        {
            return FromArgv0(argv0);
        }

        string[] args = Environment.GetCommandLineArgs();
        return args.Length > 0 ? FromArgv0(StripExtension(args[0])) : DefaultName;
    }

    /// <summary>QEMU's <c>error_set_progname</c>: the part of <paramref name="argv0"/> after the last '/'.</summary>
    public static string FromArgv0(string argv0)
    {
        string name = argv0[(argv0.LastIndexOf('/') + 1)..];
        return name.Length == 0 ? DefaultName : name;
    }

    private static string StripExtension(string path) =>
        path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".exe", StringComparison.OrdinalIgnoreCase)
            ? path[..^4]
            : path;

    private static string? ReadArgv0()
    {
        try
        {
            // The first NUL-terminated entry; reading a little of the file is enough.
            using var stream = new FileStream("/proc/self/cmdline", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            Span<byte> buffer = stackalloc byte[4096];
            int length = stream.Read(buffer);
            int end = buffer[..length].IndexOf((byte)0);
            return end > 0 ? System.Text.Encoding.UTF8.GetString(buffer[..end]) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// A library text in this program's name. The library words what it says as QEMU does, naming qemu-img where QEMU
    /// does: advice to run a command ("run 'qemu-img check -r' on the image file") and the program-name prefix of a line
    /// QEMU reports with error_report ("qemu-img: Lost persistent bitmaps …"). Those become <paramref name="programName"/>;
    /// any other "qemu-img" (in a file name, say) stays.
    /// </summary>
    public static string Rename(string text, string programName)
    {
        if (programName == QemuImgName || !text.Contains(QemuImgName, StringComparison.Ordinal))
        {
            return text;
        }

        var result = new System.Text.StringBuilder(text.Length);
        int position = 0;
        int found;
        while ((found = text.IndexOf(QemuImgName, position, StringComparison.Ordinal)) >= 0)
        {
            int after = found + QemuImgName.Length;
            bool lineStart = found == 0 || text[found - 1] == '\n';
            bool prefix = lineStart && string.CompareOrdinal(text, after, ": ", 0, 2) == 0;
            result.Append(text, position, found - position);
            result.Append(prefix || NamesCommand(text, after) ? programName : QemuImgName);
            position = after;
        }

        return result.Append(text, position, text.Length - position).ToString();
    }

    /// <summary>True when <paramref name="text"/> continues at <paramref name="index"/> with a space and a command name.</summary>
    private static bool NamesCommand(string text, int index)
    {
        if (index >= text.Length || text[index] != ' ')
        {
            return false;
        }

        int start = index + 1;
        int end = start;
        while (end < text.Length && char.IsAsciiLetterLower(text[end]))
        {
            end++;
        }

        return end > start && CommandTable.Find(text[start..end]) is not null;
    }
}
