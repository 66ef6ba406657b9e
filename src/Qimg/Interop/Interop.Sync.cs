using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FDataSyncCore(SafeHandle fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int FSyncCore(SafeHandle fd);

    /// <summary>fdatasync(2), retried on EINTR. Returns 0 or an errno.</summary>
    public static int FDataSync(SafeHandle fd) => Retry(fd, static h => FDataSyncCore(h));

    /// <summary>fsync(2), retried on EINTR. Returns 0 or an errno.</summary>
    public static int FSync(SafeHandle fd) => Retry(fd, static h => FSyncCore(h));

    private static int Retry(SafeHandle fd, Func<SafeHandle, int> call)
    {
        while (call(fd) != 0)
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
