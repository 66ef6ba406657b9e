using Qimg.Compression;

namespace Qimg.Tests.Compression;

public class ZstdCodecTests
{
    private delegate int Compressor(ReadOnlySpan<byte> source, Span<byte> destination);

    private static Compressor Pick(string implementation) =>
        implementation == "native" ? ZstdCodec.CompressNative : ZstdCodec.CompressManaged;

    [Fact]
    public void SystemLibraryIsUsedWhereQemuIsInstalled()
    {
        // qemu-utils depends on libzstd1, so the machines the tests run on have it.
        Assert.True(ZstdNative.IsAvailable);
    }

    [Theory]
    [InlineData("native", 512)]
    [InlineData("native", 65536)]
    [InlineData("native", 2 << 20)]
    [InlineData("managed", 512)]
    [InlineData("managed", 65536)]
    [InlineData("managed", 2 << 20)]
    public void RoundTrips(string implementation, int clusterSize)
    {
        byte[] data = new byte[clusterSize];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(i / 100 % 7);
        }

        byte[] compressed = new byte[clusterSize - 1];
        int length = Pick(implementation)(data, compressed);
        Assert.InRange(length, 1, clusterSize - 1);

        byte[] restored = new byte[clusterSize];
        // With sector padding after the frame, as qcow2 stores it.
        Assert.True(ZstdCodec.Decompress(compressed.AsSpan(0, Math.Min(compressed.Length, (length + 511) / 512 * 512)), restored));
        Assert.Equal(data, restored);
    }

    [Theory]
    [InlineData("native")]
    [InlineData("managed")]
    public void IncompressibleDataDoesNotFit(string implementation)
    {
        byte[] data = new byte[65536];
        new Random(2).NextBytes(data);
        Assert.Equal(-1, Pick(implementation)(data, new byte[65535]));
    }

    [Fact]
    public void DamagedInputFailsCleanly()
    {
        byte[] data = new byte[65536];
        data.AsSpan(1000, 5000).Fill(9);
        byte[] compressed = new byte[65535];
        int length = ZstdCodec.Compress(data, compressed);
        Assert.False(ZstdCodec.Decompress(compressed.AsSpan(0, length / 2), new byte[65536]));
        Assert.False(ZstdCodec.Decompress(new byte[64], new byte[65536]));
        // A frame that decodes to less than a cluster does not fill it.
        byte[] small = new byte[4096];
        int smallLength = ZstdCodec.Compress(small, compressed);
        Assert.False(ZstdCodec.Decompress(compressed.AsSpan(0, smallLength), new byte[65536]));
    }
}
