using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_TYPE_INO = 0x1 | 0x100;

    /// <summary>Which file a name or descriptor refers to: device, inode and type (st_dev, st_ino, st_mode).</summary>
    public readonly record struct FileIdentity(ulong Device, ulong Inode, int Mode)
    {
        public bool IsRegular => (Mode & S_IFMT) == S_IFREG;
    }

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenAtCore(int dirFd, string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int UnlinkAtCore(SafeHandle dirFd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatxAtCore(SafeHandle dirFd, string path, int flags, uint mask, byte* buffer);

    /// <summary>
    /// The directory holding <paramref name="path"/>, opened with O_PATH (no read access needed) so that later
    /// *at() calls name the same directory even if the path's directories are renamed or replaced meanwhile.
    /// </summary>
    /// <returns>The descriptor, or -1 with errno set.</returns>
    public static int OpenParentDirectory(string path)
    {
        string? directory = System.IO.Path.GetDirectoryName(path);
        if (string.IsNullOrEmpty(directory))
        {
            directory = path.StartsWith('/') ? "/" : ".";
        }

        const int AT_FDCWD = -100;
        int flags = O_PATH | O_CLOEXEC | O_DIRECTORY;
        int fd;
        do
        {
            fd = OpenAtCore(AT_FDCWD, directory, flags, 0);
        }
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);

        return fd;
    }

    /// <summary>The identity of the file open as <paramref name="fd"/>.</summary>
    /// <returns>0, or an errno.</returns>
    public static unsafe int FStatIdentity(SafeHandle fd, out FileIdentity identity) =>
        StatxIdentity(fd, string.Empty, AT_EMPTY_PATH, out identity);

    /// <summary>The identity of the entry <paramref name="name"/> in <paramref name="dirFd"/>, without following a symlink.</summary>
    /// <returns>0, or an errno.</returns>
    public static int LStatAtIdentity(SafeHandle dirFd, string name, out FileIdentity identity) =>
        StatxIdentity(dirFd, name, AT_SYMLINK_NOFOLLOW, out identity);

    /// <summary>unlinkat(2) of a non-directory entry.</summary>
    /// <returns>0, or an errno.</returns>
    public static int UnlinkAt(SafeHandle dirFd, string name) =>
        UnlinkAtCore(dirFd, name, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();

    // struct statx: stx_mode (u16) at 28, stx_ino (u64) at 32, stx_dev_major and stx_dev_minor (u32) at 136 and 140.
    private static unsafe int StatxIdentity(SafeHandle fd, string path, int flags, out FileIdentity identity)
    {
        byte* buffer = stackalloc byte[256];
        if (StatxAtCore(fd, path, flags, STATX_TYPE_INO, buffer) != 0)
        {
            identity = default;
            return Marshal.GetLastPInvokeError();
        }

        ulong device = ((ulong)*(uint*)(buffer + 136) << 32) | *(uint*)(buffer + 140);
        identity = new FileIdentity(device, *(ulong*)(buffer + 32), *(ushort*)(buffer + 28));
        return 0;
    }
}
