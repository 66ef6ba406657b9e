using System.Runtime.InteropServices;

namespace Qimg.Interop;

internal static partial class Libc
{
    /// <summary>copy_file_range(2): copies between two files inside the kernel (reflinks or server-side copies where the file system can).</summary>
    [LibraryImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    public static unsafe partial nint CopyFileRange(SafeHandle fdIn, long* offsetIn, SafeHandle fdOut, long* offsetOut, nuint length, uint flags);
}
