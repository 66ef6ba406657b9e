using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    public const int F_OFD_GETLK = 36;
    public const int F_OFD_SETLK = 37;

    public const short F_RDLCK = 0;
    public const short F_WRLCK = 1;
    public const short F_UNLCK = 2;

    /// <summary>struct flock on 64-bit Linux (same layout on x86-64 and arm64): 32 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static unsafe partial int FcntlLock(SafeHandle fd, int command, Flock* lockInfo);

    /// <summary>
    /// Takes (<see cref="F_RDLCK"/>/<see cref="F_WRLCK"/>) or drops (<see cref="F_UNLCK"/>) an open-file-description lock
    /// on one byte range without waiting (QEMU's <c>qemu_lock_fd</c>/<c>qemu_unlock_fd</c>). Returns 0 or an errno
    /// (EAGAIN/EACCES when another description holds a conflicting lock).
    /// </summary>
    public static unsafe int SetOfdLock(SafeHandle fd, long start, long length, short type)
    {
        var info = new Flock { Type = type, Whence = SeekSet, Start = start, Length = length };
        while (FcntlLock(fd, F_OFD_SETLK, &info) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return errno;
            }
        }

        return 0;
    }

    /// <summary>
    /// Tests whether a lock of <paramref name="type"/> on the range could be taken (QEMU's <c>qemu_lock_fd_test</c>).
    /// Returns 0 when it could, EAGAIN when another description holds a conflicting lock, or another errno.
    /// </summary>
    public static unsafe int TestOfdLock(SafeHandle fd, long start, long length, short type)
    {
        var info = new Flock { Type = type, Whence = SeekSet, Start = start, Length = length };
        while (FcntlLock(fd, F_OFD_GETLK, &info) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return errno;
            }
        }

        return info.Type == F_UNLCK ? 0 : EAGAIN;
    }

    /// <summary>True when the kernel has OFD locks (Linux 3.15+; QEMU's <c>qemu_has_ofd_lock</c>).</summary>
    public static bool HasOfdLocks(SafeHandle fd) => TestOfdLock(fd, 0, 0, F_WRLCK) != EINVAL;
}
