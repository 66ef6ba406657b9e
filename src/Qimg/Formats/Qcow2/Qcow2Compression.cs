using Qimg.Compression;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Compressed clusters: zlib clusters are raw deflate streams with a 4 KiB window (QEMU's windowBits -12), zstd clusters
/// one or more zstd frames. On disk they are followed by padding up to the next 512-byte sector, which is ignored:
/// decompression stops once a whole cluster has been produced.
/// </summary>
internal static class Qcow2Compression
{
    /// <summary>Fills <paramref name="destination"/> (one cluster) from <paramref name="source"/>.</summary>
    /// <returns>False when the data is not a valid stream of the type or does not produce a whole cluster (QEMU: -EIO).</returns>
    public static bool TryDecompress(byte compressionType, ReadOnlySpan<byte> source, Span<byte> destination) => compressionType switch
    {
        Qcow2Layout.CompressionZlib => RawDeflate.Decompress(source, destination),
        Qcow2Layout.CompressionZstd => ZstdCodec.Decompress(source, destination),
        _ => false,
    };

    /// <summary>Compresses one cluster as QEMU does (zlib default level with a 4 KiB window, or zstd's default level).</summary>
    /// <returns>The compressed length, or -1 when it does not fit in <paramref name="destination"/>.</returns>
    public static int Compress(byte compressionType, ReadOnlySpan<byte> source, Span<byte> destination) => compressionType switch
    {
        Qcow2Layout.CompressionZlib => RawDeflate.Compress(source, destination),
        Qcow2Layout.CompressionZstd => ZstdCodec.Compress(source, destination),
        _ => throw new NotSupportedException($"qcow2: unknown compression type: {compressionType}"),
    };
}
