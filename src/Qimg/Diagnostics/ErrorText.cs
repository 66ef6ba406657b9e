using System.Runtime.InteropServices;

namespace Qimg.Diagnostics;

/// <summary>Turns exceptions into the short strerror-style texts qemu-img prints ("No space left on device").</summary>
/// <remarks>
/// The library's messages use QEMU's words, program name included: advice to run a command says "qemu-img check -r
/// all" and a line QEMU reports with error_report starts "qemu-img: ", as in QEMU. A front end that goes by another
/// name puts its own there (qimg's CLI does, for messages, warnings and hints).
/// </remarks>
public static class ErrorText
{
    /// <summary>
    /// The strerror text for an I/O failure when the exception carries an errno (.NET's Unix I/O exceptions put the raw
    /// errno in HResult), the exception's own message otherwise.
    /// </summary>
    public static string Describe(Exception exception)
    {
        if (exception is IOException io && io.GetType() == typeof(IOException) && io.HResult is > 0 and < 4096)
        {
            return Marshal.GetPInvokeErrorMessage(io.HResult);
        }

        if (Formats.Qcow2.Qcow2ThrowHelper.IsCorruption(exception))
        {
            // The image has already reported the details ("qcow2: Image is corrupt: …" on the message channel); the
            // request itself failed with EIO, and that is what QEMU's callers print.
            return "Input/output error";
        }

        return exception switch
        {
            UnauthorizedAccessException => "Permission denied",
            FileNotFoundException or DirectoryNotFoundException => "No such file or directory",

            // .NET's own failures carry .NET's wording, and with UseSystemResourceKeys (the trimmed CLI) bare resource
            // keys such as "Arg_ParamName_Name": neither is qemu-img text. A request the code refused is EINVAL, any
            // other internal failure of a request is EIO, which is what QEMU's callers would print for a failed request.
            ArgumentException => Marshal.GetPInvokeErrorMessage(EINVAL),
            NullReferenceException or IndexOutOfRangeException or InvalidCastException or ArithmeticException
                or FormatException or KeyNotFoundException or ObjectDisposedException => Marshal.GetPInvokeErrorMessage(EIO),
            _ when HasResourceKey(exception.Message) => Marshal.GetPInvokeErrorMessage(EIO),
            _ => exception.Message,
        };
    }

    private const int EIO = 5;
    private const int EINVAL = 22;

    /// <summary>The prefixes of the .NET resource keys an exception message can carry in the trimmed CLI.</summary>
    private static readonly string[] s_resourceKeyPrefixes =
    [
        "Arg_", "Argument_", "ArgumentNull_", "ArgumentOutOfRange_", "Arithmetic_", "Collection_", "Format_", "IO_",
        "InvalidOperation_", "NotSupported_", "ObjectDisposed_", "Overflow_", "PlatformNotSupported_", "Task_",
        "Threading_", "UnauthorizedAccess_",
    ];

    /// <summary>
    /// True when <paramref name="message"/> holds a .NET resource key ("IO_FileNotFound_FileName", "Arg_ParamName_Name"):
    /// a word made of letters, digits and underscores that starts with one of .NET's key prefixes.
    /// </summary>
    internal static bool HasResourceKey(string message)
    {
        foreach (string word in message.Split([' ', ',', ':', '\n', '(', ')', '\''], StringSplitOptions.RemoveEmptyEntries))
        {
            if (word.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')
                && s_resourceKeyPrefixes.Any(prefix => word.StartsWith(prefix, StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }
}
