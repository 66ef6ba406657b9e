namespace Qimg.Protocols.File;

/// <summary>
/// A file operation failed with QEMU's complete message ("Could not resize file: No space left on device",
/// "Unsupported preallocation mode: metadata"). HResult carries the errno when there is one, as for the plain
/// <see cref="IOException"/>s the file protocol throws for bare I/O errors (whose message is just strerror); this
/// type says the message is already the whole story and must be shown as is.
/// </summary>
public sealed class FileIOException : IOException
{
    public FileIOException(string message, int errno)
        : base(message, errno)
    {
    }

    /// <summary>The errno behind the failure (0 when there is none).</summary>
    public int Errno => HResult;

    /// <summary>"context: strerror(errno)".</summary>
    internal static FileIOException FromErrno(int errno, string context) =>
        new($"{context}: {Interop.Libc.StrError(errno)}", errno);
}
