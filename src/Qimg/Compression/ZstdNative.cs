using System.Runtime.InteropServices;

namespace Qimg.Compression;

/// <summary>
/// The system libzstd (libzstd.so.1, installed with qemu-utils), used for compression when present: its match finders
/// are hand-tuned C and compress a qcow2 cluster about a quarter faster than the managed port, which is what
/// <c>convert -c -o compression_type=zstd</c> spends its time on. <see cref="ZstdCodec"/> falls back to ZstdSharp
/// when the library is missing.
/// </summary>
internal static unsafe partial class ZstdNative
{
    private const string Library = "libzstd.so.1";

    /// <summary>ZSTD_e_end: finish the frame.</summary>
    public const int EndDirectiveEnd = 2;

    /// <summary>ZSTD_reset_session_only.</summary>
    public const int ResetSessionOnly = 1;

    /// <summary>ZSTD_error_dstSize_tooSmall.</summary>
    public const int ErrorDestinationTooSmall = 70;

    [StructLayout(LayoutKind.Sequential)]
    public struct InBuffer
    {
        public byte* Source;
        public nuint Size;
        public nuint Position;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct OutBuffer
    {
        public byte* Destination;
        public nuint Size;
        public nuint Position;
    }

    private static readonly Lazy<bool> s_available = new(() =>
    {
        if (Environment.GetEnvironmentVariable("QIMG_MANAGED_ZSTD") == "1" || !NativeLibrary.TryLoad(Library, out nint handle))
        {
            return false;
        }

        // ZSTD_compressStream2 and the reset API are stable from zstd 1.4.0 on.
        bool usable = NativeLibrary.TryGetExport(handle, "ZSTD_compressStream2", out _)
                      && NativeLibrary.TryGetExport(handle, "ZSTD_versionNumber", out _);
        return usable && VersionNumber() >= 10400;
    });

    /// <summary>Whether the system library can be used (set QIMG_MANAGED_ZSTD=1 to force the managed port).</summary>
    public static bool IsAvailable => s_available.Value;

    [LibraryImport(Library, EntryPoint = "ZSTD_versionNumber")]
    public static partial uint VersionNumber();

    [LibraryImport(Library, EntryPoint = "ZSTD_createCCtx")]
    public static partial nint CreateCompressionContext();

    [LibraryImport(Library, EntryPoint = "ZSTD_freeCCtx")]
    public static partial nuint FreeCompressionContext(nint context);

    [LibraryImport(Library, EntryPoint = "ZSTD_CCtx_reset")]
    public static partial nuint ResetCompressionContext(nint context, int directive);

    [LibraryImport(Library, EntryPoint = "ZSTD_compressStream2")]
    public static partial nuint CompressStream2(nint context, OutBuffer* output, InBuffer* input, int endDirective);

    [LibraryImport(Library, EntryPoint = "ZSTD_isError")]
    public static partial uint IsError(nuint code);

    [LibraryImport(Library, EntryPoint = "ZSTD_getErrorCode")]
    public static partial int GetErrorCode(nuint code);
}
