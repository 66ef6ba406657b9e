using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    // Request numbers use the generic _IOC encoding, which x86-64 and arm64 share.
    public const ulong BLKROGET = 0x125e;
    public const ulong BLKSSZGET = 0x1268;
    public const ulong BLKDISCARD = 0x1277;
    public const ulong BLKZEROOUT = 0x127f;
    public const ulong BLKGETSIZE64 = 0x80081272;
    public const ulong XFS_IOC_DIOINFO = 0x800c581e;
    public const ulong FS_IOC_GETFLAGS = 0x80086601;
    public const ulong FS_IOC_SETFLAGS = 0x40086602;
    public const ulong FS_IOC_FSGETXATTR = 0x801c581f;
    public const ulong FS_IOC_FSSETXATTR = 0x401c5820;

    public const int FS_NOCOW_FL = 0x00800000;
    public const uint FS_XFLAG_EXTSIZE = 0x00000800;

    /// <summary>struct fsxattr (28 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FsXAttr
    {
        public uint XFlags;
        public uint ExtentSize;
        public uint ExtentCount;
        public uint ProjectId;
        public uint CowExtentSize;
        public ulong Padding;
    }

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int IoctlCore(SafeHandle fd, ulong request, void* argument);

    /// <summary>ioctl(2) with a pointer argument. Returns 0 (or the ioctl's non-negative result) or -errno.</summary>
    public static unsafe int Ioctl(SafeHandle fd, ulong request, void* argument)
    {
        int result = IoctlCore(fd, request, argument);
        return result >= 0 ? result : -Marshal.GetLastPInvokeError();
    }
}
