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
            _ => exception.Message,
        };
    }
}
