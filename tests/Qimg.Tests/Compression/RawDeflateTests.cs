using System.IO.Compression;
using Qimg.Compression;

namespace Qimg.Tests.Compression;

public class RawDeflateTests
{
    private static byte[] Compressible(int length, int seed)
    {
        var random = new Random(seed);
        byte[] data = new byte[length];
        for (int i = 0; i < length; i += 64)
        {
            byte value = (byte)random.Next(4);
            data.AsSpan(i, Math.Min(64, length - i)).Fill(value);
        }

        return data;
    }

    [Theory]
    [InlineData(512)]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 << 20)]
    public void RoundTrips(int clusterSize)
    {
        byte[] data = Compressible(clusterSize, clusterSize);
        byte[] compressed = new byte[clusterSize - 1];
        int length = RawDeflate.Compress(data, compressed);
        Assert.InRange(length, 1, clusterSize - 1);

        byte[] restored = new byte[clusterSize];
        Assert.True(RawDeflate.Decompress(compressed.AsSpan(0, length), restored));
        Assert.Equal(data, restored);
    }

    [Fact]
    public void OutputIsARawDeflateStreamWithASmallWindow()
    {
        byte[] data = Compressible(65536, 7);
        byte[] compressed = new byte[65535];
        int length = RawDeflate.Compress(data, compressed);

        // Any raw inflater reads it (no zlib header) ...
        using var inflater = new DeflateStream(new MemoryStream(compressed, 0, length), CompressionMode.Decompress);
        var restored = new MemoryStream();
        inflater.CopyTo(restored);
        Assert.Equal(data, restored.ToArray());

        // ... and the stream never refers back more than 4 KiB: a 4 KiB-window inflater (QEMU's) reads it too.
        byte[] viaSmallWindow = new byte[65536];
        Assert.True(RawDeflate.Decompress(compressed.AsSpan(0, length), viaSmallWindow, windowBits: 12));
        Assert.Equal(data, viaSmallWindow);
    }

    [Fact]
    public void IncompressibleDataDoesNotFit()
    {
        byte[] data = new byte[65536];
        new Random(1).NextBytes(data);
        Assert.Equal(-1, RawDeflate.Compress(data, new byte[65535]));
    }

    [Fact]
    public void TrailingPaddingIsIgnoredAndShortStreamsFail()
    {
        byte[] data = Compressible(4096, 3);
        byte[] compressed = new byte[8192];
        int length = RawDeflate.Compress(data, compressed);
        byte[] restored = new byte[4096];
        // qcow2 stores compressed clusters rounded up to whole sectors: the padding must not matter.
        Assert.True(RawDeflate.Decompress(compressed.AsSpan(0, (length + 511) / 512 * 512), restored));
        Assert.Equal(data, restored);

        Assert.False(RawDeflate.Decompress(compressed.AsSpan(0, length / 2), new byte[4096]));
        Assert.False(RawDeflate.Decompress(new byte[100], new byte[4096]));
    }

    [Fact]
    public void WorksFromManyThreadsAtOnce()
    {
        Parallel.For(0, 64, i =>
        {
            byte[] data = Compressible(65536, i);
            byte[] compressed = new byte[65535];
            int length = RawDeflate.Compress(data, compressed);
            byte[] restored = new byte[65536];
            Assert.True(RawDeflate.Decompress(compressed.AsSpan(0, length), restored));
            Assert.Equal(data, restored);
        });
    }
}
