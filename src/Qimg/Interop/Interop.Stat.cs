using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    public const int S_IFMT = 0xF000;
    public const int S_IFREG = 0x8000;
    public const int S_IFDIR = 0x4000;
    public const int S_IFCHR = 0x2000;
    public const int S_IFBLK = 0x6000;

    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_BASIC_STATS = 0x7ff;

    /// <summary>The fields of struct stat qimg uses.</summary>
    /// <param name="Mode">st_mode (file type and permission bits).</param>
    /// <param name="Size">st_size in bytes.</param>
    /// <param name="Blocks">st_blocks: allocated 512-byte units.</param>
    public readonly record struct FileStatus(int Mode, long Size, long Blocks)
    {
        public int Type => Mode & S_IFMT;
        public bool IsRegular => Type == S_IFREG;
        public bool IsDirectory => Type == S_IFDIR;
        public bool IsBlockDevice => Type == S_IFBLK;
        public bool IsCharDevice => Type == S_IFCHR;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatxCore(SafeHandle dirFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatxPathCore(int dirFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "fstatfs", SetLastError = true)]
    private static unsafe partial int FStatFsCore(SafeHandle fd, byte* buffer);

    /// <summary>fstat of an open descriptor. statx(2) is used because its layout is the same on every architecture.</summary>
    /// <returns>0, or an errno.</returns>
    public static unsafe int FStat(SafeHandle fd, out FileStatus status)
    {
        byte* buffer = stackalloc byte[256];
        if (StatxCore(fd, string.Empty, AT_EMPTY_PATH, STATX_BASIC_STATS, buffer) != 0)
        {
            status = default;
            return Marshal.GetLastPInvokeError();
        }

        status = ReadStatx(buffer);
        return 0;
    }

    /// <summary>stat(2) of a path (following symlinks).</summary>
    /// <returns>0, or an errno.</returns>
    public static unsafe int Stat(string path, out FileStatus status)
    {
        const int AT_FDCWD = -100;
        byte* buffer = stackalloc byte[256];
        if (StatxPathCore(AT_FDCWD, path, 0, STATX_BASIC_STATS, buffer) != 0)
        {
            status = default;
            return Marshal.GetLastPInvokeError();
        }

        status = ReadStatx(buffer);
        return 0;
    }

    // struct statx: stx_mode (u16) at 28, stx_size (u64) at 40, stx_blocks (u64) at 48.
    private static unsafe FileStatus ReadStatx(byte* buffer) =>
        new(*(ushort*)(buffer + 28), *(long*)(buffer + 40), *(long*)(buffer + 48));

    /// <summary>The f_type of the file system holding <paramref name="fd"/> (fstatfs(2)), or -1 on failure.</summary>
    public static unsafe long GetFileSystemType(SafeHandle fd)
    {
        // struct statfs starts with f_type (a long) on 64-bit Linux; the whole struct is 120 bytes.
        byte* buffer = stackalloc byte[256];
        return FStatFsCore(fd, buffer) == 0 ? *(long*)buffer : -1;
    }

    /// <summary>NFS_SUPER_MAGIC: O_DIRECT on NFS needs no alignment (QEMU's <c>dio_byte_aligned</c>).</summary>
    public const long NfsSuperMagic = 0x6969;
}
