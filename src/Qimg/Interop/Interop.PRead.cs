using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    [LibraryImport("libc", EntryPoint = "pread", SetLastError = true)]
    private static unsafe partial nint PReadCore(SafeHandle fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "pwrite", SetLastError = true)]
    private static unsafe partial nint PWriteCore(SafeHandle fd, byte* buffer, nuint count, long offset);

    /// <summary>pread(2), retried on EINTR. Returns the byte count (0 at EOF) or -errno.</summary>
    public static unsafe long PRead(SafeHandle fd, Span<byte> buffer, long offset)
    {
        fixed (byte* pointer = buffer)
        {
            while (true)
            {
                nint result = PReadCore(fd, pointer, (nuint)buffer.Length, offset);
                if (result >= 0)
                {
                    return result;
                }

                int errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    return -errno;
                }
            }
        }
    }

    /// <summary>pwrite(2), retried on EINTR. Returns the byte count or -errno.</summary>
    public static unsafe long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset)
    {
        fixed (byte* pointer = buffer)
        {
            while (true)
            {
                nint result = PWriteCore(fd, pointer, (nuint)buffer.Length, offset);
                if (result >= 0)
                {
                    return result;
                }

                int errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                {
                    return -errno;
                }
            }
        }
    }
}
