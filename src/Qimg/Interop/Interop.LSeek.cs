using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    public const int SeekSet = 0;
    public const int SeekEnd = 2;
    public const int SeekData = 3;
    public const int SeekHole = 4;

    /// <summary>lseek(2). Returns the new offset or -1 with errno set (ENXIO for SEEK_DATA in a trailing hole).</summary>
    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    public static partial long LSeek(SafeHandle fd, long offset, int whence);
}
