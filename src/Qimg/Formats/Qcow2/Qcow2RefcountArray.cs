namespace Qimg.Formats.Qcow2;

/// <summary>
/// An in-memory refcount table for the whole image (QEMU's "IMRT"): one entry per host cluster, packed exactly like the
/// image's refcount blocks (same width, same byte layout), so that a slice of it is a refcount block ready to be
/// written. It is kept as one lazily allocated block per refcount block index, so memory follows the clusters that are
/// actually counted and no single array grows past a cluster.
/// </summary>
/// <remarks>
/// The check sizes it by the image file (its clusters), never by header fields; it grows only when a reference lands
/// just past the end of the file or when a repair appends new clusters. Not thread-safe.
/// </remarks>
internal sealed class Qcow2RefcountArray
{
    private readonly int _order;
    private readonly int _blockSize;
    private readonly int _blockBits;
    private readonly long _blockMask;
    private byte[]?[] _blocks = [];

    /// <param name="clusterSize">Bytes per refcount block (the cluster size).</param>
    /// <param name="order">log2 of the refcount width in bits.</param>
    /// <param name="size">Initial number of entries (the image's host clusters).</param>
    public Qcow2RefcountArray(int clusterSize, int order, long size)
    {
        _order = order;
        _blockSize = clusterSize;
        long entries = Qcow2RefcountBlock.EntriesPerBlock(clusterSize, order);
        _blockBits = System.Numerics.BitOperations.Log2((ulong)entries);
        _blockMask = entries - 1;
        MaxRefcount = Qcow2RefcountBlock.MaxRefcount(order);
        Resize(size);
    }

    /// <summary>Number of entries (QEMU's nb_clusters): the clusters the check looks at.</summary>
    public long Size { get; private set; }

    /// <summary>Entries per refcount block.</summary>
    public long BlockEntries => _blockMask + 1;

    /// <summary>log2 of <see cref="BlockEntries"/>.</summary>
    public int BlockBits => _blockBits;

    /// <summary>The largest value an entry holds (the image's refcount_max).</summary>
    public ulong MaxRefcount { get; }

    /// <summary>Number of refcount blocks covering <see cref="Size"/> entries.</summary>
    public long BlockCount => (Size + _blockMask) >> _blockBits;

    /// <summary>Makes the array hold <paramref name="size"/> entries; new entries are zero, entries past a shrink are dropped.</summary>
    public void Resize(long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        long blocks = (size + _blockMask) >> _blockBits;
        if (blocks > Array.MaxLength)
        {
            throw new OutOfMemoryException();
        }

        if (blocks != _blocks.Length)
        {
            Array.Resize(ref _blocks, (int)blocks);
        }

        if (size < Size && (size & _blockMask) != 0 && _blocks[^1] is byte[] last)
        {
            // Clear the dropped tail of the last block, so that growing again finds zeroes.
            for (long i = size & _blockMask; i <= _blockMask; i++)
            {
                Qcow2RefcountBlock.Set(last, i, 0, _order);
            }
        }

        Size = size;
    }

    /// <summary>The entry of cluster <paramref name="index"/> (0 past <see cref="Size"/>).</summary>
    public ulong Get(long index)
    {
        if ((ulong)index >= (ulong)Size)
        {
            return 0;
        }

        byte[]? block = _blocks[index >> _blockBits];
        return block is null ? 0 : Qcow2RefcountBlock.Get(block, index & _blockMask, _order);
    }

    /// <summary>Sets the entry of cluster <paramref name="index"/>, growing the array when needed.</summary>
    public void Set(long index, ulong value)
    {
        if (index >= Size)
        {
            Resize(index + 1);
        }

        byte[]? block = _blocks[index >> _blockBits];
        if (block is null)
        {
            if (value == 0)
            {
                return;
            }

            block = _blocks[index >> _blockBits] = new byte[_blockSize];
        }

        Qcow2RefcountBlock.Set(block, index & _blockMask, value, _order);
    }

    /// <summary>
    /// Adds one to the entry of cluster <paramref name="index"/> (growing the array when needed), unless it already holds
    /// <see cref="MaxRefcount"/>.
    /// </summary>
    /// <returns>False when the entry is full (QEMU reports an overflow).</returns>
    public bool Increment(long index)
    {
        if (index >= Size)
        {
            Resize(index + 1);
        }

        byte[] block = _blocks[index >> _blockBits] ??= new byte[_blockSize];
        long inBlock = index & _blockMask;
        ulong value = Qcow2RefcountBlock.Get(block, inBlock, _order);
        if (value == MaxRefcount)
        {
            return false;
        }

        Qcow2RefcountBlock.Set(block, inBlock, value + 1, _order);
        return true;
    }

    /// <summary>Refcount block <paramref name="blockIndex"/> as stored, or null when all of its entries are zero.</summary>
    public byte[]? Block(long blockIndex) => blockIndex < _blocks.Length ? _blocks[blockIndex] : null;

    /// <summary>Sets every entry to zero, keeping the size.</summary>
    public void Clear()
    {
        Array.Clear(_blocks);
    }

    /// <summary>Index of the last non-zero entry of block <paramref name="blockIndex"/> below <paramref name="end"/>, or -1.</summary>
    public long LastNonZeroInBlock(long blockIndex, long end)
    {
        byte[]? block = Block(blockIndex);
        if (block is null)
        {
            return -1;
        }

        return LastNonZero(block, blockIndex, end);
    }

    /// <summary>Index of the last non-zero entry of <paramref name="block"/> (block number <paramref name="blockIndex"/>) below <paramref name="end"/>, or -1.</summary>
    public long LastNonZero(ReadOnlySpan<byte> block, long blockIndex, long end)
    {
        long first = blockIndex << _blockBits;
        long count = Math.Min(end - first, _blockMask + 1);
        if (count <= 0)
        {
            return -1;
        }

        // Bytes holding the first count entries, then the last non-zero byte among them, then the entry inside it.
        int bytes = (int)(((count << _order) + 7) >> 3);
        int last = block[..bytes].LastIndexOfAnyExcept((byte)0);
        if (last < 0)
        {
            return -1;
        }

        long entryBytes = _order >= 3 ? 1L << (_order - 3) : 0;
        long candidate = _order >= 3 ? last / entryBytes : Math.Min(count - 1, (((long)last + 1) << 3 >> _order) - 1);
        for (long i = candidate; i >= 0; i--)
        {
            if (Qcow2RefcountBlock.Get(block, i, _order) != 0)
            {
                return first + i;
            }
        }

        return -1;
    }
}
