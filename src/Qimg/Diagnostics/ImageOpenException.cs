namespace Qimg.Diagnostics;

/// <summary>
/// An image (or a file it names) could not be opened. The message is in qemu-img's words, without the outermost
/// "Could not open '&lt;name&gt;': " that qemu-img adds at the top.
/// </summary>
public class ImageOpenException : IOException
{
    public ImageOpenException(string message)
        : base(message)
    {
    }

    public ImageOpenException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
