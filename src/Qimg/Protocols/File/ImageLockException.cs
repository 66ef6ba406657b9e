using Qimg.Diagnostics;

namespace Qimg.Protocols.File;

/// <summary>
/// QEMU's image locks refused an open or a create: another process (a running QEMU, qemu-io, qemu-nbd or qimg)
/// holds the image in a conflicting way. <see cref="Exception.Message"/> is what qemu-img prints after its
/// "Could not open 'x': " prefix: the error line and, when QEMU gives one, the hint line
/// ("Is another process using the image [x]?"), separated by a newline.
/// </summary>
public sealed class ImageLockException : ImageOpenException
{
    public ImageLockException(string error, string? hint)
        : base(hint is null ? error : error + "\n" + hint)
    {
        Error = error;
        Hint = hint;
    }

    /// <summary>The error line ("Failed to get \"write\" lock").</summary>
    public string Error { get; }

    /// <summary>The hint line without its newline, or null.</summary>
    public string? Hint { get; }
}
