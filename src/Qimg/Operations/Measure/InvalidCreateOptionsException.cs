namespace Qimg.Operations.Measure;

/// <summary>
/// The <c>-o</c> options do not parse for the target format: qemu-img prints the parser's error, then
/// <see cref="FollowUp"/> as a second error line.
/// </summary>
public sealed class InvalidCreateOptionsException : OperationException
{
    public InvalidCreateOptionsException(string message, string format, Exception innerException)
        : base(message, innerException)
    {
        FollowUp = $"Invalid options for file format '{format}'";
    }

    /// <summary>The second error line ("Invalid options for file format 'FMT'").</summary>
    public string FollowUp { get; }
}
