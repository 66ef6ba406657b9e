using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Tests.Block;

/// <summary>The in-memory dirty bitmap: QEMU's HBitmap semantics (granules, past-the-end bits, merge, truncate).</summary>
public sealed class DirtyBitmapTests
{
    [Fact]
    public void SetDirty_PartialGranules_SetsWholeGranules()
    {
        var bitmap = new DirtyBitmap("b", 16, 10 << 20);
        bitmap.SetDirty(100_000, 1);
        bitmap.SetDirty(65536 * 5 - 1, 2);
        Assert.Equal([(65536L, 65536L), (4 * 65536L, 2 * 65536L)], bitmap.GetDirtyRanges());
        Assert.Equal(3 * 65536L, bitmap.DirtyBytes);
        Assert.True(bitmap.IsDirty(65536));
        Assert.False(bitmap.IsDirty(0));
    }

    [Fact]
    public void SetDirty_PastTheEnd_IsClipped()
    {
        // 1000 bytes at 512 bytes per bit: 2 bits; the last range is clipped to the size.
        var bitmap = new DirtyBitmap("b", 9, 1000);
        bitmap.SetDirty(900, 5000);
        Assert.Equal([(512L, 488L)], bitmap.GetDirtyRanges());
        Assert.Equal(1, bitmap.WordCount);
        Assert.Equal(2, bitmap.BitCount);
    }

    [Fact]
    public void SetDirty_LongRanges_AcrossPages()
    {
        var bitmap = new DirtyBitmap("b", 9, 1L << 40);
        bitmap.SetDirty(3 << 20, 700L << 20);
        bitmap.SetDirty((1L << 40) - 512, 512);
        Assert.Equal([(3L << 20, 700L << 20), ((1L << 40) - 512, 512L)], bitmap.GetDirtyRanges());
        Assert.Equal((700L << 20) + 512, bitmap.DirtyBytes);
    }

    [Fact]
    public void Serialize_RoundTrips_LittleEndianWords()
    {
        var bitmap = new DirtyBitmap("b", 12, 64L * 4096 * 3);
        bitmap.SetDirty(0, 4096);
        bitmap.SetDirty(64 * 4096 + 63 * 4096, 4096);
        byte[] data = new byte[24];
        bitmap.Serialize(0, data);
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(data));
        Assert.Equal(1UL << 63, BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(8)));
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(16)));

        var copy = new DirtyBitmap("c", 12, 64L * 4096 * 3);
        copy.Deserialize(0, data);
        Assert.Equal(bitmap.GetDirtyRanges(), copy.GetDirtyRanges());
        Assert.True(copy.HasDirtyBits(1, 1));
        Assert.False(copy.HasDirtyBits(2, 1));
    }

    [Fact]
    public void PastTheEndBits_AreKeptButNotReported()
    {
        // 160 bits: the third word has 32 bits past the end. An all-ones table entry sets them, as QEMU's memset does.
        var bitmap = new DirtyBitmap("b", 16, 10 << 20);
        bitmap.DeserializeOnes(0, 3);
        Assert.Equal([(0L, 10L << 20)], bitmap.GetDirtyRanges());
        Assert.Equal(10L << 20, bitmap.DirtyBytes);
        byte[] data = new byte[24];
        bitmap.Serialize(0, data);
        Assert.All(data, b => Assert.Equal(0xff, b));

        // Only past-the-end bits: nothing dirty, nothing to store.
        var tail = new DirtyBitmap("t", 16, 10 << 20);
        byte[] word = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(word, 0xffffffff00000000UL);
        tail.Deserialize(2, word);
        Assert.Empty(tail.GetDirtyRanges());
        Assert.False(tail.HasDirtyBits(0, 3));
    }

    [Fact]
    public void DeserializeOnes_WholePages_SharedUntilChanged()
    {
        var bitmap = new DirtyBitmap("b", 9, 512L * 64 * 64 * 4);
        bitmap.DeserializeOnes(0, 64 * 4);
        bitmap.SetDirty(0, 512);
        Assert.Equal([(0L, 512L * 64 * 64 * 4)], bitmap.GetDirtyRanges());
        bitmap.Truncate(512L * 64 * 64);
        Assert.Equal([(0L, 512L * 64 * 64)], bitmap.GetDirtyRanges());

        // Another all-ones bitmap must not see changes made to this one.
        var other = new DirtyBitmap("o", 9, 512L * 64 * 64 * 4);
        other.DeserializeOnes(0, 64 * 4);
        bitmap.Clear();
        Assert.Equal([(0L, 512L * 64 * 64 * 4)], other.GetDirtyRanges());
    }

    [Fact]
    public void Merge_SameGranularity_OrsWords()
    {
        var target = new DirtyBitmap("t", 16, 10 << 20);
        var source = new DirtyBitmap("s", 16, 10 << 20);
        target.SetDirty(0, 1);
        source.SetDirty(1 << 20, 1);
        source.DeserializeOnes(2, 1);
        target.MergeFrom(source);
        Assert.Equal([(0L, 65536L), (1L << 20, 65536L), (128L * 65536, 32L * 65536)], target.GetDirtyRanges());
        byte[] data = new byte[8];
        target.Serialize(2, data);
        Assert.Equal(ulong.MaxValue, BinaryPrimitives.ReadUInt64LittleEndian(data));
    }

    [Fact]
    public void Merge_EmptySource_KeepsPastTheEndBitsOut()
    {
        // QEMU returns early when the source counts no bits, so its past-the-end bits are not copied.
        var target = new DirtyBitmap("t", 16, 10 << 20);
        var source = new DirtyBitmap("s", 16, 10 << 20);
        byte[] word = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(word, 0xffffffff00000000UL);
        source.Deserialize(2, word);
        target.MergeFrom(source);
        byte[] data = new byte[8];
        target.Serialize(2, data);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(data));
    }

    [Fact]
    public void Merge_DifferentGranularity_SetsDirtyRanges()
    {
        var target = new DirtyBitmap("t", 16, 10 << 20);
        var source = new DirtyBitmap("s", 12, 10 << 20);
        source.SetDirty(70000, 10);
        source.SetDirty(200_000, 100_000);
        target.MergeFrom(source);
        Assert.Equal([(65536L, 65536L), (196608L, 131072L)], target.GetDirtyRanges());
    }

    [Fact]
    public void Truncate_ShrinkThenGrow_DroppedBitsComeBackClear()
    {
        var bitmap = new DirtyBitmap("b", 9, 1 << 20);
        bitmap.SetDirty(0, 1 << 20);
        bitmap.Truncate(300 * 512 + 100);
        Assert.Equal([(0L, 300L * 512 + 100)], bitmap.GetDirtyRanges());
        bitmap.Truncate(1 << 20);
        Assert.Equal([(0L, 301L * 512)], bitmap.GetDirtyRanges());
        Assert.Equal(2048, bitmap.BitCount);
    }

    [Fact]
    public void Truncate_KeepsPastTheEndBitsOfAKeptWord()
    {
        // hbitmap_truncate only clears the bits that fall away; bits past the old end in a word that stays become
        // visible when the bitmap grows within that word (QEMU does the same).
        var bitmap = new DirtyBitmap("b", 9, 512 * 10);
        byte[] word = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(word, 1UL << 20);
        bitmap.Deserialize(0, word);
        Assert.Empty(bitmap.GetDirtyRanges());
        bitmap.Truncate(512 * 30);
        Assert.Equal([(512L * 20, 512L)], bitmap.GetDirtyRanges());
    }

    [Fact]
    public void Clear_RemovesEverything()
    {
        var bitmap = new DirtyBitmap("b", 9, 1 << 20);
        bitmap.SetDirty(0, 1 << 20);
        bitmap.Clear();
        Assert.Empty(bitmap.GetDirtyRanges());
        Assert.Equal(0, bitmap.DirtyBytes);
    }

    [Fact]
    public void HugeInconsistentBitmap_AllocatesNothing()
    {
        // An in-use bitmap of an 8 EiB image at 512 bytes per bit: never set, so no pages exist.
        var bitmap = new DirtyBitmap("b", 9, long.MaxValue / 512 * 512) { IsInconsistent = true, IsEnabled = false };
        Assert.Empty(bitmap.GetDirtyRanges());
        Assert.Equal(0, bitmap.DirtyBytes);
    }

    [Fact]
    public async Task SetDirty_Concurrent_AllBitsLand()
    {
        var bitmap = new DirtyBitmap("b", 9, 64L << 20);
        await Parallel.ForAsync(0, 4096, async (i, _) =>
        {
            bitmap.SetDirty(i * 16384L, 512);
            await Task.Yield();
        });
        Assert.Equal(4096L * 512, bitmap.DirtyBytes);
    }
}
