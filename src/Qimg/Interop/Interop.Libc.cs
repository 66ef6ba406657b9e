using System.Runtime.InteropServices;

namespace Qimg.Interop;

/// <summary>The few libc calls qimg needs that .NET does not expose (Linux x86-64 and arm64 layouts).</summary>
internal static partial class Libc
{
    public const int SeekData = 3;
    public const int SeekHole = 4;

    public const int ENXIO = 6;
    public const int EINVAL = 22;
    public const int EOPNOTSUPP = 95;

    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    public static partial long LSeek(SafeHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int FAllocate(SafeHandle fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int FStat(SafeHandle fd, byte* statBuffer);

    /// <summary>True when the open file is a regular file (S_ISREG), false for devices, pipes and on error.</summary>
    public static unsafe bool IsRegularFile(SafeHandle fd)
    {
        byte* buffer = stackalloc byte[256];
        if (FStat(fd, buffer) != 0)
        {
            return false;
        }

        // st_mode follows st_dev and st_ino on arm64; on x86-64 st_nlink (8 bytes) comes first.
        int modeOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        uint mode = *(uint*)(buffer + modeOffset);
        return (mode & 0xF000) == 0x8000;
    }

    /// <summary>st_blocks (512-byte units) of an open file, or -1 with errno set.</summary>
    public static unsafe long GetAllocatedBlocks(SafeHandle fd)
    {
        // struct stat is 144 bytes on x86-64 and 128 on arm64; st_blocks is at offset 64 on both.
        byte* buffer = stackalloc byte[256];
        if (FStat(fd, buffer) != 0)
        {
            return -1;
        }

        return *(long*)(buffer + 64);
    }
}
