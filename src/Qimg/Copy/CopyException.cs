namespace Qimg.Copy;

/// <summary>A copy failed; the message is qemu-img's ("error while reading at byte N: …").</summary>
public sealed class CopyException : IOException
{
    public CopyException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
