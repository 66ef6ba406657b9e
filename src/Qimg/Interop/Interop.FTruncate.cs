using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int FTruncateCore(SafeHandle fd, long length);

    /// <summary>ftruncate(2), retried on EINTR. Returns 0 or an errno.</summary>
    public static int FTruncate(SafeHandle fd, long length)
    {
        while (FTruncateCore(fd, length) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return errno;
            }
        }

        return 0;
    }
}
