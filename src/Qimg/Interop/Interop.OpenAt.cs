using System.Runtime.InteropServices;
using System.Text;

namespace Qimg.Interop;

internal static partial class Libc
{
    public const int ELOOP = 40;
    public const int EXDEV = 18;
    public const int ENOTDIR = 20;

    /// <summary>O_PATH: a descriptor that only names a file (same value on x86-64 and arm64).</summary>
    public const int O_PATH = 0x200000;

    /// <summary>O_DIRECTORY: 0200000 on x86-64, 040000 on arm64.</summary>
    public static int O_DIRECTORY => IsArm64 ? 0x4000 : 0x10000;

    /// <summary>O_NOFOLLOW: 0400000 on x86-64, 0100000 on arm64.</summary>
    public static int O_NOFOLLOW => IsArm64 ? 0x8000 : 0x20000;

    /// <summary>openat2's RESOLVE_NO_MAGICLINKS: refuse /proc-style "magic" links.</summary>
    public const ulong RESOLVE_NO_MAGICLINKS = 0x02;

    /// <summary>openat2's RESOLVE_BENEATH: fail with EXDEV when resolution would leave the directory.</summary>
    public const ulong RESOLVE_BENEATH = 0x08;

    /// <summary>openat2's syscall number: 437 on x86-64 and arm64 alike (syscalls added after 5.1 share numbers).</summary>
    private const long SysOpenAt2 = 437;

    /// <summary>struct open_how (include/uapi/linux/openat2.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenAtCore(SafeHandle dirFd, string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial long OpenAt2Core(long number, SafeHandle dirFd, string path, OpenHow* how, nuint size);

    [LibraryImport("libc", EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial nint ReadLinkAtCore(SafeHandle dirFd, string path, byte* buffer, nuint size);

    /// <summary>openat(2) relative to <paramref name="dirFd"/>, retried on EINTR. Returns the descriptor or -1 with errno set.</summary>
    public static int OpenAt(SafeHandle dirFd, string path, int flags, int mode = 0)
    {
        int fd;
        do
        {
            fd = OpenAtCore(dirFd, path, flags, mode);
        }
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);

        return fd;
    }

    /// <summary>
    /// openat2(2) relative to <paramref name="dirFd"/> with <paramref name="resolve"/> flags, retried on EINTR and on
    /// EAGAIN (which RESOLVE_BENEATH returns when a rename or mount raced the lookup and asks the caller to retry).
    /// Returns the descriptor or -1 with errno set (ENOSYS on kernels before 5.6 or where seccomp hides it).
    /// </summary>
    public static unsafe int OpenAt2(SafeHandle dirFd, string path, int flags, ulong resolve)
    {
        var how = new OpenHow { Flags = (uint)flags, Mode = 0, Resolve = resolve };
        long fd;
        int attempts = 0;
        do
        {
            fd = OpenAt2Core(SysOpenAt2, dirFd, path, &how, (nuint)sizeof(OpenHow));
        }
        while (fd < 0 && (Marshal.GetLastPInvokeError() == EINTR || (Marshal.GetLastPInvokeError() == EAGAIN && ++attempts < 1000)));

        return (int)fd;
    }

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial byte* RealPathCore(string path, byte* resolved);

    /// <summary>realpath(3): the absolute name of <paramref name="path"/> with every link and "." or ".." resolved, or null.</summary>
    public static unsafe string? RealPath(string path)
    {
        byte* buffer = stackalloc byte[4096];
        return RealPathCore(path, buffer) is null ? null : Marshal.PtrToStringUTF8((nint)buffer);
    }

    /// <summary>readlinkat(2): the target of the link <paramref name="path"/> in <paramref name="dirFd"/> (an empty path
    /// reads the link an O_PATH|O_NOFOLLOW descriptor names), or null with errno set.</summary>
    public static unsafe string? ReadLinkAt(SafeHandle dirFd, string path)
    {
        byte[] buffer = new byte[4096];
        fixed (byte* pointer = buffer)
        {
            nint length = ReadLinkAtCore(dirFd, path, pointer, (nuint)buffer.Length);
            if (length < 0)
            {
                return null;
            }

            return Encoding.UTF8.GetString(buffer, 0, (int)length);
        }
    }
}
