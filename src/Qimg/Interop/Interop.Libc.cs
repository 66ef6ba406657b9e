using System.Runtime.InteropServices;

namespace Qimg.Interop;

/// <summary>
/// The libc calls qimg needs that .NET does not expose, one partial file per call (Linux; x86-64 and arm64 layouts).
/// Every call sets errno (<see cref="Marshal.GetLastPInvokeError"/>); wrappers that retry on EINTR say so.
/// </summary>
internal static partial class Libc
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int EBUSY = 16;
    public const int ENODEV = 19;
    public const int EISDIR = 21;
    public const int EINVAL = 22;
    public const int ENOTTY = 25;
    public const int ENOSPC = 28;
    public const int EROFS = 30;
    public const int ENOSYS = 38;
    public const int EOPNOTSUPP = 95;

    /// <summary>The strerror(3) text of <paramref name="errno"/> ("No such file or directory").</summary>
    public static string StrError(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    /// <summary>
    /// QEMU's <c>translate_err</c>: the errnos that mean "this file system or device cannot do that" all become
    /// EOPNOTSUPP (ENOTSUP and EOPNOTSUPP are the same value on Linux).
    /// </summary>
    public static int TranslateNotSupported(int errno) =>
        errno is ENODEV or ENOSYS or EOPNOTSUPP or ENOTTY ? EOPNOTSUPP : errno;

    /// <summary>An <see cref="IOException"/> carrying the errno in HResult and strerror as the message (what
    /// <c>Qimg.Diagnostics.ErrorText</c> expects).</summary>
    public static IOException IOError(int errno) => new(StrError(errno), errno);

    public static int LastError => Marshal.GetLastPInvokeError();

    public static bool IsArm64 => RuntimeInformation.ProcessArchitecture == Architecture.Arm64;
}
