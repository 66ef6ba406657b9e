using Qimg.Formats.Qcow2;

namespace Qimg.Tests.Formats.Qcow2.Check;

/// <summary>The check's building blocks: the packed in-memory refcounts and the batched table reader.</summary>
public sealed class Qcow2CheckUnitTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void RefcountArray_EveryWidth_PacksLikeRefcountBlocks(int order)
    {
        const int ClusterSize = 512;
        long perBlock = Qcow2RefcountBlock.EntriesPerBlock(ClusterSize, order);
        var counts = new Qcow2RefcountArray(ClusterSize, order, perBlock * 3 - 5);
        Assert.Equal(3, counts.BlockCount);
        Assert.Null(counts.Block(1));

        var expected = new Dictionary<long, ulong>();
        var random = new Random(order);
        ulong max = Qcow2RefcountBlock.MaxRefcount(order);
        for (int i = 0; i < 200; i++)
        {
            long index = random.NextInt64(counts.Size);
            ulong value = order == 6 ? (ulong)random.NextInt64() : (ulong)random.NextInt64((long)max + 1);
            counts.Set(index, value);
            expected[index] = value;
        }

        foreach ((long index, ulong value) in expected)
        {
            Assert.Equal(value, counts.Get(index));

            // The array is the concatenation of refcount blocks: the same packing as on disk.
            byte[] block = counts.Block(index / perBlock)!;
            Assert.Equal(value, Qcow2RefcountBlock.Get(block, index % perBlock, order));
        }

        Assert.Equal(0UL, counts.Get(counts.Size + 10));
    }

    [Fact]
    public void RefcountArray_Increment_StopsAtTheWidth()
    {
        var counts = new Qcow2RefcountArray(512, 1, 100);
        Assert.True(counts.Increment(7));
        Assert.True(counts.Increment(7));
        Assert.True(counts.Increment(7));
        Assert.False(counts.Increment(7));
        Assert.Equal(3UL, counts.Get(7));
        Assert.Equal(0UL, counts.Get(6));
        Assert.Equal(0UL, counts.Get(8));
    }

    [Fact]
    public void RefcountArray_GrowsForEntriesPastTheEnd()
    {
        var counts = new Qcow2RefcountArray(512, 4, 10);
        Assert.True(counts.Increment(1000));
        Assert.Equal(1001, counts.Size);
        Assert.Equal(1UL, counts.Get(1000));
        counts.Resize(500);
        counts.Resize(1001);
        Assert.Equal(0UL, counts.Get(1000));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(6)]
    public void RefcountArray_LastNonZero_FindsTheLastEntry(int order)
    {
        var counts = new Qcow2RefcountArray(512, order, 5000);
        long perBlock = counts.BlockEntries;
        Assert.Equal(-1, counts.LastNonZeroInBlock(0, counts.Size));
        counts.Set(3, 1);
        counts.Set(perBlock - 1, 1);
        Assert.Equal(perBlock - 1, counts.LastNonZeroInBlock(0, counts.Size));
        Assert.Equal(3, counts.LastNonZeroInBlock(0, perBlock - 1));
        counts.Set(perBlock + 5, 1);
        Assert.Equal(perBlock + 5, counts.LastNonZeroInBlock(1, counts.Size));
        Assert.Equal(-1, counts.LastNonZeroInBlock(1, perBlock + 5));
    }

    [Fact]
    public async Task TableReader_ReadsEveryTable_InFewRequests()
    {
        const int TableSize = 4096;
        byte[] data = new byte[1 << 20];
        new Random(5).NextBytes(data);
        var file = new Qcow2UnitTests.RecordingNode(data);

        // Neighbours, a duplicate, an unaligned table, one straddling the end of the file and one far past it.
        long[] offsets = [8192, 4096, 12288, 4096, 700000 + 3, data.Length - 1000, 1L << 40, 0];
        byte[] buffer = new byte[offsets.Length * TableSize];
        Exception?[]? failures = await Qcow2TableReader.ReadAsync(file, offsets, offsets.Length, TableSize, buffer, default);
        Assert.Null(failures);
        for (int i = 0; i < offsets.Length; i++)
        {
            byte[] expected = new byte[TableSize];
            if (offsets[i] < data.Length)
            {
                int available = (int)Math.Min(TableSize, data.Length - offsets[i]);
                data.AsSpan((int)offsets[i], available).CopyTo(expected);
            }

            Assert.True(expected.AsSpan().SequenceEqual(buffer.AsSpan(i * TableSize, TableSize)), $"table {i} at {offsets[i]}");
        }
    }

    [Fact]
    public async Task TableReader_ReadFailure_IsReportedPerTable()
    {
        var file = new FailingNode(new byte[1 << 20], failAt: 512 * 1024);
        long[] offsets = [0, 512 * 1024, 4096];
        byte[] buffer = new byte[3 * 4096];
        Exception?[]? failures = await Qcow2TableReader.ReadAsync(file, offsets, 3, 4096, buffer, default);
        Assert.NotNull(failures);
        Assert.Null(failures[0]);
        Assert.IsType<IOException>(failures[1]);
        Assert.Null(failures[2]);
    }

    /// <summary>A memory node whose reads covering one offset fail with EIO.</summary>
    private sealed class FailingNode : Qimg.Block.BlockNode
    {
        private readonly byte[] _data;
        private readonly long _failAt;

        public FailingNode(byte[] data, long failAt)
            : base("memory", true)
        {
            _data = data;
            _failAt = failAt;
        }

        public override string DriverName => "file";

        public override bool IsProtocol => true;

        public override long Length => _data.Length;

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            if (offset <= _failAt && _failAt < offset + buffer.Length)
            {
                throw new IOException("Input/output error", 5);
            }

            _data.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
            return default;
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, Qimg.Block.WriteFlags flags, CancellationToken cancellationToken) =>
            throw new InvalidOperationException();
    }
}
