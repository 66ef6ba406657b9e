using System.Runtime.InteropServices;

namespace Qimg.Compression;

/// <summary>
/// Raw deflate (no zlib header) with a chosen window, through the system zlib: the codec of qcow2's "zlib"
/// compression type, which QEMU writes and reads with windowBits -12 (a 4 KiB window).
/// </summary>
/// <remarks>
/// Thread-safe: each thread keeps its own deflate and inflate state (allocated once, reset per call), so compressing
/// many clusters on many threads costs no per-cluster setup.
/// </remarks>
public static unsafe class RawDeflate
{
    /// <summary>QEMU's window for qcow2 clusters: 2^12 bytes.</summary>
    public const int QcowWindowBits = 12;

    [ThreadStatic]
    private static StreamHolder? t_deflater;

    [ThreadStatic]
    private static StreamHolder? t_inflater;

    /// <summary>
    /// Compresses <paramref name="source"/> into <paramref name="destination"/> as one raw deflate stream with a
    /// 2^<paramref name="windowBits"/> window and zlib's default level, as QEMU's qcow2_zlib_compress does.
    /// </summary>
    /// <returns>The compressed length, or -1 when the result does not fit in <paramref name="destination"/>.</returns>
    /// <exception cref="IOException">zlib failed for another reason.</exception>
    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination, int windowBits = QcowWindowBits)
    {
        ZlibNative.ZStream* stream = ThreadStream(ref t_deflater, windowBits, deflate: true);
        if (ZlibNative.DeflateReset(stream) != ZlibNative.ZOk)
        {
            throw new IOException("zlib: deflateReset failed");
        }

        fixed (byte* input = source)
        fixed (byte* output = destination)
        {
            stream->NextIn = input;
            stream->AvailIn = (uint)source.Length;
            stream->NextOut = output;
            stream->AvailOut = (uint)destination.Length;
            int result = ZlibNative.Deflate(stream, ZlibNative.ZFinish);
            int produced = destination.Length - (int)stream->AvailOut;
            stream->NextIn = null;
            stream->NextOut = null;
            return result switch
            {
                ZlibNative.ZStreamEnd => produced,
                ZlibNative.ZOk or ZlibNative.ZBufError => -1,
                _ => throw new IOException($"zlib: deflate failed ({result})"),
            };
        }
    }

    /// <summary>
    /// Inflates a raw deflate stream until <paramref name="destination"/> is full, ignoring input past the end of the
    /// stream (qcow2 stores compressed clusters rounded up to sectors), as QEMU's qcow2_zlib_decompress does.
    /// </summary>
    /// <returns>True when exactly <paramref name="destination"/>.Length bytes were produced.</returns>
    public static bool Decompress(ReadOnlySpan<byte> source, Span<byte> destination, int windowBits = QcowWindowBits)
    {
        ZlibNative.ZStream* stream = ThreadStream(ref t_inflater, windowBits, deflate: false);
        if (ZlibNative.InflateReset(stream) != ZlibNative.ZOk)
        {
            throw new IOException("zlib: inflateReset failed");
        }

        fixed (byte* input = source)
        fixed (byte* output = destination)
        {
            stream->NextIn = input;
            stream->AvailIn = (uint)source.Length;
            stream->NextOut = output;
            stream->AvailOut = (uint)destination.Length;
            int result = ZlibNative.Inflate(stream, ZlibNative.ZFinish);
            bool full = stream->AvailOut == 0;
            stream->NextIn = null;
            stream->NextOut = null;
            // A stream that ends exactly at the end of the output, or output filled before the stream ended
            // (Z_BUF_ERROR), both count: QEMU only requires the cluster to be filled.
            return full && (result == ZlibNative.ZStreamEnd || result == ZlibNative.ZBufError || result == ZlibNative.ZOk);
        }
    }

    /// <summary>This thread's stream for <paramref name="windowBits"/>, created (or recreated for another window) on first use.</summary>
    private static ZlibNative.ZStream* ThreadStream(ref StreamHolder? slot, int windowBits, bool deflate)
    {
        if (slot is null || slot.WindowBits != windowBits)
        {
            slot?.Dispose();
            slot = deflate ? StreamHolder.ForDeflate(windowBits) : StreamHolder.ForInflate(windowBits);
        }

        return slot.Stream;
    }

    /// <summary>A z_stream in native memory (zlib keeps pointers into it, so it must not move).</summary>
    private sealed class StreamHolder : IDisposable
    {
        private readonly bool _deflate;

        private StreamHolder(bool deflate, int windowBits)
        {
            _deflate = deflate;
            WindowBits = windowBits;
            Stream = (ZlibNative.ZStream*)NativeMemory.AllocZeroed((nuint)sizeof(ZlibNative.ZStream));
        }

        ~StreamHolder() => Release();

        public ZlibNative.ZStream* Stream { get; private set; }

        public int WindowBits { get; }

        public static StreamHolder ForDeflate(int windowBits)
        {
            var holder = new StreamHolder(true, windowBits);
            int result = ZlibNative.DeflateInit2(holder.Stream, ZlibNative.ZDefaultCompression, ZlibNative.ZDeflated, -windowBits, 9, ZlibNative.ZDefaultStrategy, ZlibNative.ZlibVersion(), sizeof(ZlibNative.ZStream));
            if (result != ZlibNative.ZOk)
            {
                holder.Dispose();
                throw new IOException($"zlib: deflateInit2 failed ({result})");
            }

            return holder;
        }

        public static StreamHolder ForInflate(int windowBits)
        {
            var holder = new StreamHolder(false, windowBits);
            int result = ZlibNative.InflateInit2(holder.Stream, -windowBits, ZlibNative.ZlibVersion(), sizeof(ZlibNative.ZStream));
            if (result != ZlibNative.ZOk)
            {
                holder.Dispose();
                throw new IOException($"zlib: inflateInit2 failed ({result})");
            }

            return holder;
        }

        public void Dispose()
        {
            Release();
            GC.SuppressFinalize(this);
        }

        private void Release()
        {
            if (Stream != null)
            {
                if (_deflate)
                {
                    ZlibNative.DeflateEnd(Stream);
                }
                else
                {
                    ZlibNative.InflateEnd(Stream);
                }

                NativeMemory.Free(Stream);
                Stream = null;
            }
        }
    }
}
