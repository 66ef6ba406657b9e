using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FAllocateCore(SafeHandle fd, int mode, long offset, long length);

    /// <summary>
    /// fallocate(2), retried on EINTR. Returns 0, or the errno passed through <see cref="TranslateNotSupported"/>
    /// (QEMU's <c>do_fallocate</c>).
    /// </summary>
    public static int FAllocate(SafeHandle fd, int mode, long offset, long length)
    {
        while (FAllocateCore(fd, mode, offset, length) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return TranslateNotSupported(errno);
            }
        }

        return 0;
    }

    /// <summary>posix_fallocate(3): returns 0 or an errno (it does not set errno). glibc falls back to writing a byte per
    /// block when the file system has no fallocate().</summary>
    [LibraryImport("libc", EntryPoint = "posix_fallocate")]
    public static partial int PosixFAllocate(SafeHandle fd, long offset, long length);
}
