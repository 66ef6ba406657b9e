using System.Buffers.Binary;
using System.Numerics;

namespace Qimg.Block;

/// <summary>
/// A dirty bitmap of an image: one bit per <see cref="Granularity"/> bytes of guest data, set when the range is written,
/// zeroed or discarded while the bitmap is enabled (QEMU's <c>BdrvDirtyBitmap</c> over an <c>HBitmap</c>).
/// </summary>
/// <remarks>
/// <para>
/// The bits are kept as QEMU keeps them: 64-bit words, bit <c>i</c> covering bytes
/// <c>[i * Granularity, (i + 1) * Granularity)</c>, the last word possibly holding bits past <see cref="Size"/> (an image
/// can store them; QEMU carries them along but never reports them). Storage is sparse: pages of 64 words are allocated
/// when a bit in them is set or loaded, so memory follows the content, not the covered size.
/// </para>
/// <para>
/// Thread-safe: writes from concurrent requests set bits at the same time. The bitmap is owned by the image it is
/// attached to; its contents are changed through that image and the bitmap operations (<c>Qimg.Operations</c>).
/// </para>
/// </remarks>
public sealed class DirtyBitmap
{
    /// <summary>Words per page: 4096 bits, the smallest bitmap data cluster (512 bytes), so stored chunks are whole pages.</summary>
    internal const int PageWords = 64;

    private const int PageShift = 6;

    /// <summary>A page with every bit set, shared and never written (QEMU's all-ones bitmap table entries).</summary>
    private static readonly ulong[] s_allOnes = CreateAllOnes();

    private readonly Lock _sync = new();
    private ulong[]?[]? _pages;
    private long _size;

    internal DirtyBitmap(string name, int granularityBits, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ArgumentOutOfRangeException.ThrowIfLessThan(granularityBits, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(granularityBits, 62);
        Name = name;
        GranularityBits = granularityBits;
        _size = size;
        IsEnabled = true;
    }

    /// <summary>The bitmap's name (unique per image).</summary>
    public string Name { get; }

    /// <summary>Bytes per bit: a power of two, at least 512.</summary>
    public long Granularity => 1L << GranularityBits;

    /// <summary>log2 of <see cref="Granularity"/>.</summary>
    public int GranularityBits { get; }

    /// <summary>The number of guest bytes covered: the image size when the bitmap was created or last resized.</summary>
    public long Size
    {
        get
        {
            lock (_sync)
            {
                return _size;
            }
        }
    }

    /// <summary>Writes set bits (QEMU: not "disabled"; the "auto" flag of a stored bitmap).</summary>
    public bool IsEnabled { get; internal set; }

    /// <summary>
    /// The stored bitmap was found "in use": a program that tracked it did not store it, so its bits cannot be trusted.
    /// An inconsistent bitmap has no bits, is disabled, and can only be removed.
    /// </summary>
    public bool IsInconsistent { get; internal set; }

    /// <summary>The bitmap belongs to an image opened read-only: it cannot be changed.</summary>
    public bool IsReadOnly { get; internal set; }

    /// <summary>The bitmap is stored in the image when it is closed (every bitmap qimg loads or adds is).</summary>
    public bool IsPersistent { get; internal set; } = true;

    /// <summary>Number of bits: <see cref="Size"/> divided by the granularity, rounded up.</summary>
    internal long BitCount => BitsFor(Size, GranularityBits);

    /// <summary>Number of 64-bit words holding the bits (QEMU's serialization size divided by 8).</summary>
    internal long WordCount => (BitCount + 63) >> 6;

    /// <summary>Whether the bit covering guest byte <paramref name="offset"/> is set.</summary>
    public bool IsDirty(long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        lock (_sync)
        {
            if (offset >= _size)
            {
                return false;
            }

            long bit = offset >> GranularityBits;
            return (GetWord(bit >> 6) & (1UL << (int)(bit & 63))) != 0;
        }
    }

    /// <summary>
    /// The number of bytes marked dirty, counted in whole granules (QEMU's <c>bdrv_get_dirty_count</c>); bits past
    /// <see cref="Size"/> do not count.
    /// </summary>
    public long DirtyBytes
    {
        get
        {
            lock (_sync)
            {
                return CountBits(0, BitsFor(_size, GranularityBits)) << GranularityBits;
            }
        }
    }

    /// <summary>
    /// The dirty ranges in guest bytes, in order, each a maximal run of set bits clipped to <see cref="Size"/> (QEMU's
    /// <c>hbitmap_next_dirty_area</c> walk). The list is a snapshot.
    /// </summary>
    public IReadOnlyList<(long Offset, long Length)> GetDirtyRanges()
    {
        var ranges = new List<(long, long)>();
        lock (_sync)
        {
            long bits = BitsFor(_size, GranularityBits);
            long bit = NextSetBit(0, bits);
            while (bit >= 0)
            {
                long end = NextClearBit(bit, bits);
                long start = bit << GranularityBits;
                ranges.Add((start, Math.Min(end << GranularityBits, _size) - start));
                bit = end < bits ? NextSetBit(end, bits) : -1;
            }
        }

        return ranges;
    }

    public override string ToString() => $"{Name} (granularity {Granularity}, {(IsEnabled ? "enabled" : "disabled")}{(IsInconsistent ? ", inconsistent" : "")})";

    // ------------------------------------------------------------ changes (through the owning image and operations)

    /// <summary>Sets the bits covering guest bytes [offset, offset + length), clipped to <see cref="Size"/> (QEMU's hbitmap_set).</summary>
    internal void SetDirty(long offset, long length)
    {
        lock (_sync)
        {
            long end = Math.Min(offset + length, _size);
            if (length <= 0 || offset >= end)
            {
                return;
            }

            SetBits(offset >> GranularityBits, ((end - 1) >> GranularityBits) + 1);
        }
    }

    /// <summary>Clears every bit, past-the-end ones included (QEMU's hbitmap_reset_all).</summary>
    internal void Clear()
    {
        lock (_sync)
        {
            _pages = null;
        }
    }

    /// <summary>
    /// ORs <paramref name="source"/> into this bitmap (QEMU's hbitmap_merge with the result in place): nothing happens when
    /// the source has no bits; with equal granularities the words are ORed (past-the-end bits included); otherwise each
    /// dirty range of the source is set here. The sizes must be equal (the caller checks, with QEMU's message).
    /// </summary>
    internal void MergeFrom(DirtyBitmap source)
    {
        if (source == this)
        {
            return;
        }

        if (source.DirtyBytes == 0)
        {
            return;
        }

        if (source.GranularityBits != GranularityBits)
        {
            foreach ((long offset, long length) in source.GetDirtyRanges())
            {
                SetDirty(offset, length);
            }

            return;
        }

        ulong[]?[]? sourcePages;
        lock (source._sync)
        {
            sourcePages = source._pages is null ? null : (ulong[]?[])source._pages.Clone();
            if (sourcePages is not null)
            {
                for (int i = 0; i < sourcePages.Length; i++)
                {
                    if (sourcePages[i] is ulong[] page && page != s_allOnes)
                    {
                        sourcePages[i] = (ulong[])page.Clone();
                    }
                }
            }
        }

        if (sourcePages is null)
        {
            return;
        }

        lock (_sync)
        {
            ulong[]?[] pages = EnsurePages();
            for (int i = 0; i < Math.Min(pages.Length, sourcePages.Length); i++)
            {
                ulong[]? from = sourcePages[i];
                if (from is null || pages[i] == s_allOnes)
                {
                    continue;
                }

                if (from == s_allOnes)
                {
                    pages[i] = s_allOnes;
                    continue;
                }

                ulong[] to = pages[i] ??= new ulong[PageWords];
                for (int w = 0; w < PageWords; w++)
                {
                    to[w] |= from[w];
                }
            }
        }
    }

    /// <summary>
    /// Resizes the bitmap to cover <paramref name="size"/> bytes (QEMU's hbitmap_truncate): growing adds clear bits after
    /// the existing words; shrinking clears the bits that fall away.
    /// </summary>
    internal void Truncate(long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        lock (_sync)
        {
            long oldBits = BitsFor(_size, GranularityBits);
            long newBits = BitsFor(size, GranularityBits);
            _size = size;
            if (newBits == oldBits || _pages is null)
            {
                return;
            }

            if (newBits < oldBits)
            {
                ClearBits(newBits, oldBits);
            }

            // Words past the new end are dropped; words a later growth brings back start clear, as in QEMU.
            long newWords = Math.Max((newBits + 63) >> 6, 1);
            var pages = new ulong[]?[(newWords + PageWords - 1) >> PageShift];
            Array.Copy(_pages, pages, Math.Min(pages.Length, _pages.Length));
            for (long w = newWords; w < (long)pages.Length << PageShift; w++)
            {
                SetWord(pages, w, 0);
            }

            _pages = pages;
        }
    }

    // ------------------------------------------------------------ serialization (64-bit little-endian words)

    /// <summary>Whether any bit below the end lies in words [firstWord, firstWord + count).</summary>
    internal bool HasDirtyBits(long firstWord, long count)
    {
        lock (_sync)
        {
            long bits = BitsFor(_size, GranularityBits);
            long start = firstWord << 6;
            long end = Math.Min((firstWord + count) << 6, bits);
            return start < end && NextSetBit(start, end) >= 0;
        }
    }

    /// <summary>Writes words [firstWord, firstWord + destination.Length / 8) little-endian into <paramref name="destination"/>.</summary>
    internal void Serialize(long firstWord, Span<byte> destination)
    {
        lock (_sync)
        {
            for (int i = 0; i < destination.Length / 8; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(destination[(i * 8)..], GetWord(firstWord + i));
            }
        }
    }

    /// <summary>Replaces words [firstWord, firstWord + source.Length / 8) with the little-endian words in <paramref name="source"/>.</summary>
    internal void Deserialize(long firstWord, ReadOnlySpan<byte> source)
    {
        lock (_sync)
        {
            ulong[]?[] pages = EnsurePages();
            for (int i = 0; i < source.Length / 8; i++)
            {
                SetWord(pages, firstWord + i, BinaryPrimitives.ReadUInt64LittleEndian(source[(i * 8)..]));
            }
        }
    }

    /// <summary>Sets every bit of words [firstWord, firstWord + count) (an all-ones table entry), past-the-end bits included.</summary>
    internal void DeserializeOnes(long firstWord, long count)
    {
        lock (_sync)
        {
            ulong[]?[] pages = EnsurePages();
            long end = firstWord + count;
            for (long w = firstWord; w < end;)
            {
                if ((w & (PageWords - 1)) == 0 && w + PageWords <= end)
                {
                    pages[w >> PageShift] = s_allOnes;
                    w += PageWords;
                }
                else
                {
                    SetWord(pages, w, ulong.MaxValue);
                    w++;
                }
            }
        }
    }

    /// <summary>Bits needed to cover <paramref name="size"/> bytes at 2^<paramref name="granularityBits"/> bytes per bit.</summary>
    internal static long BitsFor(long size, int granularityBits) =>
        (long)(((ulong)size + (1UL << granularityBits) - 1) >> granularityBits);

    // ------------------------------------------------------------ words and pages (under _sync)

    private static ulong[] CreateAllOnes()
    {
        var page = new ulong[PageWords];
        page.AsSpan().Fill(ulong.MaxValue);
        return page;
    }

    private ulong[]?[] EnsurePages()
    {
        if (_pages is null)
        {
            long words = Math.Max((BitsFor(_size, GranularityBits) + 63) >> 6, 1);
            long pageCount = (words + PageWords - 1) >> PageShift;
            if (pageCount > Array.MaxLength)
            {
                throw new OutOfMemoryException($"Dirty bitmap '{Name}' is too large");
            }

            _pages = new ulong[]?[pageCount];
        }

        return _pages;
    }

    private ulong GetWord(long word)
    {
        if (_pages is null || (word >> PageShift) >= _pages.Length)
        {
            return 0;
        }

        ulong[]? page = _pages[word >> PageShift];
        return page is null ? 0 : page[word & (PageWords - 1)];
    }

    private static void SetWord(ulong[]?[] pages, long word, ulong value)
    {
        long index = word >> PageShift;
        if (index >= pages.Length)
        {
            return;
        }

        ulong[]? page = pages[index];
        if (page is null)
        {
            if (value == 0)
            {
                return;
            }

            page = pages[index] = new ulong[PageWords];
        }
        else if (page == s_allOnes)
        {
            if (value == ulong.MaxValue)
            {
                return;
            }

            page = pages[index] = CreateAllOnes();
        }

        page[word & (PageWords - 1)] = value;
    }

    private void SetBits(long first, long end)
    {
        ulong[]?[] pages = EnsurePages();
        for (long bit = first; bit < end;)
        {
            long word = bit >> 6;
            int shift = (int)(bit & 63);
            int n = (int)Math.Min(64 - shift, end - bit);
            ulong mask = (n == 64 ? ulong.MaxValue : ((1UL << n) - 1)) << shift;
            ulong current = GetWord(word);
            if ((current & mask) != mask)
            {
                SetWord(pages, word, current | mask);
            }

            bit += n;
        }
    }

    private void ClearBits(long first, long end)
    {
        if (_pages is null)
        {
            return;
        }

        for (long bit = first; bit < end;)
        {
            long word = bit >> 6;
            int shift = (int)(bit & 63);
            int n = (int)Math.Min(64 - shift, end - bit);
            ulong mask = (n == 64 ? ulong.MaxValue : ((1UL << n) - 1)) << shift;
            ulong current = GetWord(word);
            if ((current & mask) != 0)
            {
                SetWord(_pages, word, current & ~mask);
            }

            bit += n;
        }
    }

    private long CountBits(long first, long end)
    {
        long count = 0;
        if (_pages is null)
        {
            return 0;
        }

        for (long bit = first; bit < end;)
        {
            long word = bit >> 6;
            if ((bit & 63) == 0 && (word & (PageWords - 1)) == 0 && end - bit >= PageWords * 64 && (word >> PageShift) < _pages.Length)
            {
                ulong[]? page = _pages[word >> PageShift];
                if (page is not null)
                {
                    foreach (ulong w in page)
                    {
                        count += BitOperations.PopCount(w);
                    }
                }

                bit += PageWords * 64;
                continue;
            }

            int shift = (int)(bit & 63);
            int n = (int)Math.Min(64 - shift, end - bit);
            ulong mask = (n == 64 ? ulong.MaxValue : ((1UL << n) - 1)) << shift;
            count += BitOperations.PopCount(GetWord(word) & mask);
            bit += n;
        }

        return count;
    }

    /// <summary>The first set bit in [from, end), or -1.</summary>
    private long NextSetBit(long from, long end)
    {
        if (_pages is null)
        {
            return -1;
        }

        long bit = from;
        while (bit < end)
        {
            long word = bit >> 6;
            long pageIndex = word >> PageShift;
            if (pageIndex >= _pages.Length)
            {
                return -1;
            }

            if (_pages[pageIndex] is null)
            {
                bit = (pageIndex + 1) << (PageShift + 6);
                continue;
            }

            ulong value = GetWord(word) & (ulong.MaxValue << (int)(bit & 63));
            if (value != 0)
            {
                long found = (word << 6) + BitOperations.TrailingZeroCount(value);
                return found < end ? found : -1;
            }

            bit = (word + 1) << 6;
        }

        return -1;
    }

    /// <summary>The first clear bit in [from, end), or end.</summary>
    private long NextClearBit(long from, long end)
    {
        long bit = from;
        while (bit < end)
        {
            long word = bit >> 6;
            long pageIndex = word >> PageShift;
            if (_pages is null || pageIndex >= _pages.Length || _pages[pageIndex] is null)
            {
                return bit;
            }

            if (_pages[pageIndex] == s_allOnes)
            {
                bit = (pageIndex + 1) << (PageShift + 6);
                continue;
            }

            ulong value = ~GetWord(word) & (ulong.MaxValue << (int)(bit & 63));
            if (value != 0)
            {
                return Math.Min((word << 6) + BitOperations.TrailingZeroCount(value), end);
            }

            bit = (word + 1) << 6;
        }

        return end;
    }
}
