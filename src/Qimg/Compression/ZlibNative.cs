using System.Runtime.InteropServices;

namespace Qimg.Compression;

/// <summary>
/// The system zlib (libz.so.1). .NET's DeflateStream always deflates with a 32 KiB window, but QEMU inflates qcow2
/// clusters with a 4 KiB window (windowBits -12), so compressed clusters must be made by a deflater whose window can
/// be set: zlib's own.
/// </summary>
internal static unsafe partial class ZlibNative
{
    private const string Library = "libz.so.1";

    public const int ZOk = 0;
    public const int ZStreamEnd = 1;
    public const int ZBufError = -5;
    public const int ZFinish = 4;
    public const int ZDeflated = 8;
    public const int ZDefaultCompression = -1;
    public const int ZDefaultStrategy = 0;

    /// <summary>zlib's z_stream on LP64 platforms (112 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ZStream
    {
        public byte* NextIn;
        public uint AvailIn;
        public nuint TotalIn;
        public byte* NextOut;
        public uint AvailOut;
        public nuint TotalOut;
        public nint Msg;
        public nint State;
        public nint ZAlloc;
        public nint ZFree;
        public nint Opaque;
        public int DataType;
        public nuint Adler;
        public nuint Reserved;
    }

    [LibraryImport(Library, EntryPoint = "zlibVersion")]
    public static partial byte* ZlibVersion();

    [LibraryImport(Library, EntryPoint = "deflateInit2_")]
    public static partial int DeflateInit2(ZStream* stream, int level, int method, int windowBits, int memLevel, int strategy, byte* version, int streamSize);

    [LibraryImport(Library, EntryPoint = "deflate")]
    public static partial int Deflate(ZStream* stream, int flush);

    [LibraryImport(Library, EntryPoint = "deflateReset")]
    public static partial int DeflateReset(ZStream* stream);

    [LibraryImport(Library, EntryPoint = "deflateEnd")]
    public static partial int DeflateEnd(ZStream* stream);

    [LibraryImport(Library, EntryPoint = "inflateInit2_")]
    public static partial int InflateInit2(ZStream* stream, int windowBits, byte* version, int streamSize);

    [LibraryImport(Library, EntryPoint = "inflate")]
    public static partial int Inflate(ZStream* stream, int flush);

    [LibraryImport(Library, EntryPoint = "inflateReset")]
    public static partial int InflateReset(ZStream* stream);

    [LibraryImport(Library, EntryPoint = "inflateEnd")]
    public static partial int InflateEnd(ZStream* stream);
}
