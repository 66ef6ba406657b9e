namespace Qimg.Operations;

/// <summary>
/// An operation failed for a reason the user must fix (qemu-img's <c>error_setg</c> errors). The message is in
/// qemu-img's words; <see cref="Hint"/>, when present, is the extra text qemu-img prints after the message line
/// (<c>error_append_hint</c>), verbatim, including its own line breaks or lack of them.
/// </summary>
public class OperationException : Exception
{
    public OperationException(string message, string? hint = null)
        : base(message)
    {
        Hint = hint;
    }

    public OperationException(string message, Exception innerException, string? hint = null)
        : base(message, innerException)
    {
        Hint = hint;
    }

    /// <summary>Text printed after the message line, exactly as qemu-img prints its hint.</summary>
    public string? Hint { get; }
}
