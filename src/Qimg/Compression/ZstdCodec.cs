using ZstdSharp.Unsafe;

namespace Qimg.Compression;

/// <summary>
/// Zstandard for qcow2's "zstd" compression type, with QEMU's framing: one frame per cluster written with the streaming
/// API at the default level; reading accepts several frames and trailing padding, and requires the cluster to be filled.
/// Compression uses the system libzstd when it is installed and the managed port otherwise; both make frames QEMU reads.
/// </summary>
/// <remarks>Thread-safe: each thread keeps its own compression and decompression contexts.</remarks>
public static unsafe class ZstdCodec
{
    [ThreadStatic]
    private static ContextHolder? t_contexts;

    [ThreadStatic]
    private static NativeContextHolder? t_nativeContext;

    /// <summary>Compresses <paramref name="source"/> into one zstd frame.</summary>
    /// <returns>The compressed length, or -1 when it does not fit in <paramref name="destination"/>.</returns>
    /// <exception cref="IOException">zstd failed for another reason.</exception>
    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination) =>
        ZstdNative.IsAvailable ? CompressNative(source, destination) : CompressManaged(source, destination);

    /// <summary>Compresses with the system libzstd (see <see cref="ZstdNative"/>).</summary>
    internal static int CompressNative(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        NativeContextHolder holder = t_nativeContext ??= new NativeContextHolder();
        ZstdNative.ResetCompressionContext(holder.Compressor, ZstdNative.ResetSessionOnly);
        fixed (byte* input = source)
        fixed (byte* output = destination)
        {
            var inBuffer = new ZstdNative.InBuffer { Source = input, Size = (nuint)source.Length };
            var outBuffer = new ZstdNative.OutBuffer { Destination = output, Size = (nuint)destination.Length };
            nuint remaining = ZstdNative.CompressStream2(holder.Compressor, &outBuffer, &inBuffer, ZstdNative.EndDirectiveEnd);
            if (ZstdNative.IsError(remaining) != 0)
            {
                if (ZstdNative.GetErrorCode(remaining) == ZstdNative.ErrorDestinationTooSmall)
                {
                    return -1;
                }

                throw new IOException("zstd: compression failed");
            }

            return remaining == 0 ? (int)outBuffer.Position : -1;
        }
    }

    /// <summary>Compresses with the managed port (ZstdSharp).</summary>
    internal static int CompressManaged(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        ContextHolder contexts = t_contexts ??= new ContextHolder();
        ZSTD_CCtx_s* cctx = contexts.Compressor;
        Methods.ZSTD_CCtx_reset(cctx, ZSTD_ResetDirective.ZSTD_reset_session_only);
        fixed (byte* input = source)
        fixed (byte* output = destination)
        {
            var inBuffer = new ZSTD_inBuffer_s { src = input, size = (nuint)source.Length, pos = 0 };
            var outBuffer = new ZSTD_outBuffer_s { dst = output, size = (nuint)destination.Length, pos = 0 };
            nuint remaining = Methods.ZSTD_compressStream2(cctx, &outBuffer, &inBuffer, ZSTD_EndDirective.ZSTD_e_end);
            if (Methods.ZSTD_isError(remaining))
            {
                if (Methods.ZSTD_getErrorCode(remaining) == ZSTD_ErrorCode.ZSTD_error_dstSize_tooSmall)
                {
                    return -1;
                }

                throw new IOException("zstd: compression failed");
            }

            // Anything left to flush means the output was too small for the frame.
            return remaining == 0 ? (int)outBuffer.pos : -1;
        }
    }

    /// <summary>Decompresses frames from <paramref name="source"/> until <paramref name="destination"/> is full.</summary>
    /// <returns>True when the cluster was filled and the last frame ended cleanly.</returns>
    public static bool Decompress(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        ContextHolder contexts = t_contexts ??= new ContextHolder();
        ZSTD_DCtx_s* dctx = contexts.Decompressor;
        Methods.ZSTD_DCtx_reset(dctx, ZSTD_ResetDirective.ZSTD_reset_session_only);
        fixed (byte* input = source)
        fixed (byte* output = destination)
        {
            var inBuffer = new ZSTD_inBuffer_s { src = input, size = (nuint)source.Length, pos = 0 };
            var outBuffer = new ZSTD_outBuffer_s { dst = output, size = (nuint)destination.Length, pos = 0 };
            nuint result = 0;
            while (outBuffer.pos < outBuffer.size)
            {
                nuint lastIn = inBuffer.pos;
                nuint lastOut = outBuffer.pos;
                result = Methods.ZSTD_decompressStream(dctx, &outBuffer, &inBuffer);
                if (Methods.ZSTD_isError(result))
                {
                    return false;
                }

                if (inBuffer.pos <= lastIn && outBuffer.pos <= lastOut)
                {
                    // No progress: truncated or damaged input.
                    return false;
                }
            }

            return result == 0;
        }
    }

    private sealed class NativeContextHolder
    {
        public NativeContextHolder()
        {
            Compressor = ZstdNative.CreateCompressionContext();
            if (Compressor == 0)
            {
                throw new OutOfMemoryException("zstd: cannot create a compression context");
            }
        }

        ~NativeContextHolder() => ZstdNative.FreeCompressionContext(Compressor);

        public nint Compressor { get; }
    }

    private sealed class ContextHolder
    {
        public ContextHolder()
        {
            Compressor = Methods.ZSTD_createCCtx();
            Decompressor = Methods.ZSTD_createDCtx();
        }

        ~ContextHolder()
        {
            Methods.ZSTD_freeCCtx(Compressor);
            Methods.ZSTD_freeDCtx(Decompressor);
        }

        public ZSTD_CCtx_s* Compressor { get; }

        public ZSTD_DCtx_s* Decompressor { get; }
    }
}
