using System.IO.Compression;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Decompression of compressed clusters: zlib clusters are raw deflate streams (QEMU writes them with a 4 KiB window,
/// which any inflater reads), zstd clusters are one or more zstd frames. Both are followed by padding up to the next
/// 512-byte sector, which is ignored: decompression stops once a whole cluster has been produced.
/// </summary>
internal static class Qcow2Compression
{
    /// <summary>
    /// Fills <paramref name="destination"/> (one cluster) from <paramref name="source"/>.
    /// </summary>
    /// <returns>False when the data is not a valid stream of the type or does not produce a whole cluster (QEMU: -EIO).</returns>
    public static bool TryDecompress(byte compressionType, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        try
        {
            return compressionType switch
            {
                Qcow2Layout.CompressionZlib => Inflate(source, destination),
                Qcow2Layout.CompressionZstd => DecompressZstd(source, destination),
                _ => false,
            };
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ZstdSharp.ZstdException)
        {
            return false;
        }
    }

    private static unsafe bool Inflate(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        fixed (byte* input = source)
        {
            using var stream = new UnmanagedMemoryStream(input, source.Length);
            using var inflater = new DeflateStream(stream, CompressionMode.Decompress);
            return ReadFully(inflater, destination);
        }
    }

    private static unsafe bool DecompressZstd(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        fixed (byte* input = source)
        {
            using var stream = new UnmanagedMemoryStream(input, source.Length);
            using var decompressor = new ZstdSharp.DecompressionStream(stream, leaveOpen: true);
            return ReadFully(decompressor, destination);
        }
    }

    private static bool ReadFully(Stream stream, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int read = stream.Read(destination);
            if (read == 0)
            {
                return false;
            }

            destination = destination[read..];
        }

        return true;
    }
}
