using System.Buffers.Binary;
using Qimg.Block;
using Qimg.Formats.Qcow2;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>Pure decoding and packing: refcount entries of every width, L2 entries, compressed descriptors.</summary>
public sealed class Qcow2UnitTests
{
    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 3)]
    [InlineData(2, 15)]
    [InlineData(3, 255)]
    [InlineData(4, 65535)]
    [InlineData(5, uint.MaxValue)]
    [InlineData(6, ulong.MaxValue)]
    public void RefcountBlock_EveryWidth_PacksAndRoundTrips(int order, ulong max)
    {
        Assert.Equal(max, Qcow2RefcountBlock.MaxRefcount(order));
        Assert.Equal(512L * 8 >> order, Qcow2RefcountBlock.EntriesPerBlock(512, order));
        byte[] block = new byte[512];
        long entries = Qcow2RefcountBlock.EntriesPerBlock(512, order);
        var random = new Random(order);
        ulong[] values = new ulong[entries];
        for (long i = 0; i < entries; i++)
        {
            values[i] = order == 6 ? (ulong)random.NextInt64() : (ulong)random.NextInt64() & max;
            Qcow2RefcountBlock.Set(block, i, values[i], order);
        }

        for (long i = 0; i < entries; i++)
        {
            Assert.Equal(values[i], Qcow2RefcountBlock.Get(block, i, order));
        }

        if (order < 6)
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => Qcow2RefcountBlock.Set(block, 0, max + 1, order));
        }
    }

    [Fact]
    public void RefcountBlock_SubByteWidths_UseLeastSignificantBitsFirst()
    {
        byte[] block = new byte[4];
        Qcow2RefcountBlock.Set(block, 1, 1, 0);
        Assert.Equal(0b0000_0010, block[0]);
        Qcow2RefcountBlock.Set(block, 3, 2, 1);
        Assert.Equal(0b1000_0000, block[0] & 0b1100_0000);
        Qcow2RefcountBlock.Set(block, 3, 0xa, 2);
        Assert.Equal(0xa0, block[1]);
        Qcow2RefcountBlock.Set(block, 1, 0x1234, 4);
        Assert.Equal(new byte[] { 0x12, 0x34 }, block[2..4]);
    }

    [Theory]
    [InlineData(16, 4, false, 65536L * 4, 131072L)]
    [InlineData(9, 4, true, 512L * 1000, 2560L)]
    public void RefcountMetadataSize_CoversItself(int clusterBits, int order, bool generous, long clusters, long expectedBytes)
    {
        long bytes = Qcow2RefcountBlock.MetadataSize(clusters / (1L << clusterBits), 1 << clusterBits, order, generous, out long blocks);
        Assert.True(blocks >= 1);
        Assert.Equal(expectedBytes, bytes);
    }

    [Fact]
    public void L2Entry_ClusterTypes()
    {
        Assert.Equal(Qcow2ClusterType.Unallocated, new Qcow2L2Entry(0, 0).GetClusterType(false, false));
        Assert.Equal(Qcow2ClusterType.Normal, new Qcow2L2Entry(0x8000000000050000, 0).GetClusterType(false, false));
        Assert.Equal(Qcow2ClusterType.ZeroPlain, new Qcow2L2Entry(1, 0).GetClusterType(false, false));
        Assert.Equal(Qcow2ClusterType.ZeroAllocated, new Qcow2L2Entry(0x50001, 0).GetClusterType(false, false));
        Assert.Equal(Qcow2ClusterType.Compressed, new Qcow2L2Entry(0x4000000000050000, 0).GetClusterType(false, false));

        // With an external data file, host offset 0 is a real cluster when the copied flag says so.
        Assert.Equal(Qcow2ClusterType.Normal, new Qcow2L2Entry(0x8000000000000000, 0).GetClusterType(false, true));
        Assert.Equal(Qcow2ClusterType.Unallocated, new Qcow2L2Entry(0x8000000000000000, 0).GetClusterType(false, false));

        // With extended L2 entries, bit 0 is not a zero flag.
        Assert.Equal(Qcow2ClusterType.Unallocated, new Qcow2L2Entry(1, 0).GetClusterType(true, false));
    }

    [Fact]
    public void L2Entry_SubclusterTypesAndRuns()
    {
        ulong bitmap = 0b1111UL | (0b11UL << 32 << 8);
        var entry = new Qcow2L2Entry(0x8000000000050000, bitmap);
        Assert.Equal(Qcow2SubclusterType.Normal, entry.GetSubclusterType(0, true, false));
        Assert.Equal(4, entry.CountSameType(0, 32, true, false, out _));
        Assert.Equal(2, entry.CountSameType(2, 32, true, false, out _));
        Assert.Equal(Qcow2SubclusterType.UnallocatedAllocated, entry.GetSubclusterType(4, true, false));
        Assert.Equal(4, entry.CountSameType(4, 32, true, false, out _));
        Assert.Equal(Qcow2SubclusterType.ZeroAllocated, entry.GetSubclusterType(8, true, false));
        Assert.Equal(2, entry.CountSameType(8, 32, true, false, out _));
        Assert.Equal(22, entry.CountSameType(10, 32, true, false, out Qcow2SubclusterType rest));
        Assert.Equal(Qcow2SubclusterType.UnallocatedAllocated, rest);

        var unallocated = new Qcow2L2Entry(0, 0xffffffffUL << 32);
        Assert.Equal(Qcow2SubclusterType.ZeroPlain, unallocated.GetSubclusterType(31, true, false));
        Assert.Equal(32, unallocated.CountSameType(0, 32, true, false, out _));

        // Allocated and zero at once, or allocation bits without a host cluster, are invalid.
        Assert.Equal(-1, new Qcow2L2Entry(0x8000000000050000, 1UL | (1UL << 32)).CountSameType(0, 32, true, false, out _));
        Assert.Equal(Qcow2SubclusterType.Invalid, new Qcow2L2Entry(0, 1).GetSubclusterType(5, true, false));
    }

    [Theory]
    [InlineData(9, 0x1234L, 700)]
    [InlineData(16, 0x12345678L, 40000)]
    [InlineData(21, 0x7fff_ffff_0201L, 2_000_000)]
    public void L2Entry_CompressedDescriptor_RoundTrips(int clusterBits, long offset, int length)
    {
        var entry = new Qcow2L2Entry(Qcow2L2Entry.MakeCompressed(offset, length, clusterBits), 0);
        Assert.True(entry.IsCompressed);
        Assert.Equal(offset, entry.CompressedOffset(clusterBits));

        // The length covers whole sectors from the offset to the end of the data.
        int readLength = entry.CompressedLength(clusterBits);
        Assert.True(readLength >= length && readLength < length + 512);
        Assert.Equal(0, (offset + readLength) % 512);
    }

    [Fact]
    public async Task MetadataCache_EvictsLeastRecentlyUsed_WritesDirtyTables()
    {
        var file = new RecordingNode(1 << 20);
        var cache = new Qcow2MetadataCache("L2 table", file, 2, 512, ct => file.FlushAsync(ct));
        Qcow2CachedTable a = await cache.GetAsync(512, default);
        a.Data[0] = 1;
        Qcow2MetadataCache.MarkDirty(a);
        cache.Release(a);
        Qcow2CachedTable b = await cache.GetAsync(1024, default);
        cache.Release(b);
        Assert.Empty(file.Log);

        Qcow2CachedTable c = await cache.GetAsync(1536, default);
        cache.Release(c);
        Assert.Equal(["write 512"], file.Log);
        Assert.Same(b, cache.Find(1024));
        Assert.Null(cache.Find(512));
    }

    [Fact]
    public async Task MetadataCache_PinnedTablesAreNotEvicted()
    {
        var file = new RecordingNode(1 << 20);
        var cache = new Qcow2MetadataCache("L2 table", file, 2, 512, ct => file.FlushAsync(ct));
        Qcow2CachedTable a = await cache.GetAsync(512, default);
        Qcow2CachedTable b = await cache.GetAsync(1024, default);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await cache.GetAsync(1536, default));
        cache.Release(a);
        Qcow2CachedTable c = await cache.GetAsync(1536, default);
        Assert.Same(a, c);
        cache.Release(b);
        cache.Release(c);
    }

    [Fact]
    public async Task MetadataCache_Dependency_WritesAndFlushesTheOtherCacheFirst()
    {
        var file = new RecordingNode(1 << 20);
        var refcounts = new Qcow2MetadataCache("refcount block", file, 4, 512, ct => file.FlushAsync(ct));
        var l2 = new Qcow2MetadataCache("L2 table", file, 4, 512, ct => file.FlushAsync(ct));
        Qcow2CachedTable block = await refcounts.GetAsync(512, default);
        Qcow2MetadataCache.MarkDirty(block);
        refcounts.Release(block);
        await l2.SetDependencyAsync(refcounts, default);
        Qcow2CachedTable table = await l2.GetAsync(2048, default);
        Qcow2MetadataCache.MarkDirty(table);
        l2.Release(table);

        await l2.WriteAsync(default);
        Assert.Equal(["write 512", "flush", "write 2048"], file.Log);

        // Copied-on-write data must reach the disk before the next L2 table write.
        file.Log.Clear();
        table = await l2.GetAsync(2048, default);
        Qcow2MetadataCache.MarkDirty(table);
        l2.Release(table);
        l2.DependOnFlush();
        await l2.FlushAsync(default);
        Assert.Equal(["flush", "write 2048", "flush"], file.Log);
    }

    [Fact]
    public async Task MetadataCache_DiscardedSlotIsReusedBeforeALiveTable()
    {
        var file = new RecordingNode(1 << 20);
        var cache = new Qcow2MetadataCache("L2 table", file, 2, 512, ct => file.FlushAsync(ct));
        Qcow2CachedTable a = await cache.GetAsync(512, default);
        cache.Release(a);
        Qcow2CachedTable b = await cache.GetAsync(1024, default);
        cache.Release(b);
        Qcow2MetadataCache.Discard(b);
        Assert.Null(cache.Find(1024));

        Qcow2CachedTable c = await cache.GetAsync(1536, default);
        cache.Release(c);
        Assert.Same(b, c);
        Assert.Same(a, cache.Find(512));
        Assert.Same(c, cache.Find(1536));
    }

    /// <summary>
    /// The cache holds up to 8192 tables for a 16 GiB image with 4 KiB clusters: a lookup that scanned every slot made
    /// mapping such an image quadratic (16 s instead of 1). 65536 slots, 65536 misses and 262144 hits: well under a
    /// second with constant-time lookups, about 10 s with a scan per lookup.
    /// </summary>
    [Fact]
    public async Task MetadataCache_LookupCostDoesNotGrowWithCapacity()
    {
        const int Capacity = 1 << 16;
        var file = new RecordingNode(Capacity * 512);
        var cache = new Qcow2MetadataCache("L2 table", file, Capacity, 512, ct => file.FlushAsync(ct));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int pass = 0; pass < 5; pass++)
        {
            for (long i = 1; i < Capacity; i++)
            {
                Qcow2CachedTable table = await cache.GetAsync(i * 512, default);
                cache.Release(table);
            }
        }

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"{watch.Elapsed.TotalSeconds:F2} s");
        Assert.Empty(file.Log);
    }

    /// <summary>Opening an image to read its header allocates no table it does not read (info of a large image).</summary>
    [Fact]
    public void MetadataCache_AllocatesSlotsWhenFirstUsed()
    {
        var file = new RecordingNode(1 << 20);
        long before = GC.GetAllocatedBytesForCurrentThread();
        _ = new Qcow2MetadataCache("L2 table", file, 8192, 4096, ct => file.FlushAsync(ct));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
    }

    [Fact]
    public async Task MetadataCache_UnalignedOffset_IsCorruption()
    {
        var file = new RecordingNode(1 << 20);
        var cache = new Qcow2MetadataCache("L2 table", file, 2, 512, ct => file.FlushAsync(ct));
        InvalidDataException e = await Assert.ThrowsAsync<InvalidDataException>(async () => await cache.GetAsync(700, default));
        Assert.Equal("Cannot get entry from L2 table cache: Offset 0x2bc is unaligned", e.Message);
    }

    /// <summary>An in-memory protocol node that logs writes and flushes.</summary>
    internal sealed class RecordingNode : BlockNode
    {
        private byte[] _data;

        public RecordingNode(int size)
            : this(new byte[size])
        {
        }

        public RecordingNode(byte[] data)
            : base("memory", false)
        {
            _data = data;
        }

        public List<string> Log { get; } = [];

        /// <summary>Every write in order, and null for every flush.</summary>
        public List<(long Offset, byte[] Data)?> Writes { get; } = [];

        public byte[] Bytes => _data;

        public override string DriverName => "file";

        public override bool IsProtocol => true;

        public override bool CanGrow => true;

        public override long Length => (_data.Length + 511) & ~511L;

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            lock (Log)
            {
                buffer.Span.Clear();
                if (offset < _data.Length)
                {
                    _data.AsSpan((int)offset, (int)Math.Min(buffer.Length, _data.Length - offset)).CopyTo(buffer.Span);
                }
            }

            return default;
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
        {
            lock (Log)
            {
                if (offset + data.Length > _data.Length)
                {
                    Array.Resize(ref _data, (int)(offset + data.Length));
                }

                data.Span.CopyTo(_data.AsSpan((int)offset));
                Log.Add($"write {offset}");
                Writes.Add((offset, data.ToArray()));
            }

            return default;
        }

        protected override ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken) =>
            ValueTask.FromResult(false);

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken)
        {
            lock (Log)
            {
                Log.Add("flush");
                Writes.Add(null);
            }

            return default;
        }

        protected override ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken)
        {
            lock (Log)
            {
                Array.Resize(ref _data, (int)length);
                Log.Add($"truncate {length}");
            }

            return default;
        }
    }

    [Fact]
    public void LuksHeader_Invalid_FailsWithQemuMessages()
    {
        byte[] header = new byte[592];
        Assert.Equal("Volume is not in LUKS format", Assert.Throws<InvalidDataException>(() => Qcow2Encryption.ParseLuks(header)).Message);
        "LUKS"u8.CopyTo(header);
        header[4] = 0xba;
        header[5] = 0xbe;
        header[7] = 2;
        Assert.Equal("LUKS version 2 is not supported", Assert.Throws<InvalidDataException>(() => Qcow2Encryption.ParseLuks(header)).Message);
        header[7] = 1;
        header.AsSpan(8, 32).Fill((byte)'a');
        Assert.Equal("LUKS header cipher name is not NUL terminated", Assert.Throws<InvalidDataException>(() => Qcow2Encryption.ParseLuks(header)).Message);
        header.AsSpan(8, 32).Clear();
        Assert.Equal("LUKS payload is overlapping with the header", Assert.Throws<InvalidDataException>(() => Qcow2Encryption.ParseLuks(header)).Message);
    }

    [Fact]
    public void Layout_MatchesSpecConstants()
    {
        Span<byte> magic = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(magic, Qcow2Layout.Magic);
        Assert.Equal("QFI\u00fb", string.Concat(magic.ToArray().Select(b => (char)b)));
        Assert.Equal(0xffffffffUL, Qcow2Layout.SubclusterAllocRange(0, 32));
        Assert.Equal(0x0000000600000000UL, Qcow2Layout.SubclusterZeroRange(1, 3));
    }
}
