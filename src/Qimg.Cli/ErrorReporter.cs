using System.ComponentModel;
using Qimg.Operations;
using Qimg.Options;

namespace Qimg.Cli;

/// <summary>
/// Turns exceptions into qemu-img's error wording: the one place where library failures become "qimg: …" lines.
/// Never a stack trace: anything unexpected still becomes a single line.
/// </summary>
internal static class ErrorReporter
{
    /// <summary>The message for <paramref name="exception"/>, as qemu-img would word the error behind it.</summary>
    public static string Describe(Exception exception)
    {
        switch (exception)
        {
            case AggregateException aggregate when aggregate.InnerExceptions.Count == 1:
                return Describe(aggregate.InnerExceptions[0]);
            case OptionException or OperationException or Diagnostics.ImageOpenException:
                return exception.Message;
            case OutOfMemoryException or InsufficientMemoryException:
                return "Cannot allocate memory";
            case Win32Exception win32:
                return win32.Message;
            default:
                string message = Diagnostics.ErrorText.Describe(exception);
                return message.Length == 0 ? exception.GetType().Name : message;
        }
    }

    /// <summary>The hint qemu-img prints after the message line, or empty.</summary>
    public static string HintOf(Exception exception) => exception switch
    {
        AggregateException aggregate when aggregate.InnerExceptions.Count == 1 => HintOf(aggregate.InnerExceptions[0]),
        OperationException { Hint: string hint } => hint,
        _ => string.Empty,
    };

    /// <summary>The complete stderr text for <paramref name="exception"/>: "qimg: {prefix}{message}\n{hint}".</summary>
    public static string Format(Exception exception, string programName, string? prefix = null) =>
        $"{programName}: {ProgramIdentity.Rename($"{prefix}{Describe(exception)}\n{HintOf(exception)}", programName)}";
}
