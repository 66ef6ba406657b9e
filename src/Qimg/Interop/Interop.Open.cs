using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    /// <summary>O_DIRECT: 040000 on x86-64, 0200000 on arm64 (the generic and the x86 headers differ).</summary>
    public static int O_DIRECT => IsArm64 ? 0x10000 : 0x4000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenCore(string path, int flags, int mode);

    /// <summary>open(2), retried on EINTR. Returns the descriptor or -1 with errno set.</summary>
    public static int Open(string path, int flags, int mode)
    {
        int fd;
        do
        {
            fd = OpenCore(path, flags, mode);
        }
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);

        return fd;
    }
}
