using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>A table held by a <see cref="Qcow2MetadataCache"/>: one cluster of metadata and its bookkeeping.</summary>
internal sealed class Qcow2CachedTable
{
    internal Qcow2CachedTable(Qcow2MetadataCache owner, int size)
    {
        Owner = owner;
        // Not zeroed: a table is read from the file or filled by its user before use, and clearing 32 MiB of fresh
        // tables was a third of the time of mapping an image whose L2 tables all fit the cache.
        Data = GC.AllocateUninitializedArray<byte>(size);
    }

    /// <summary>Host offset of the table in the image file; 0 when the slot is free.</summary>
    public long Offset { get; internal set; }

    /// <summary>The table's bytes, big endian as on disk. Mutate only under the image lock, then call MarkDirty.</summary>
    public byte[] Data { get; }

    internal int Pins { get; set; }

    internal bool Dirty { get; set; }

    /// <summary>The cache that holds this table.</summary>
    internal Qcow2MetadataCache Owner { get; }

    /// <summary>Neighbours in the owner's list of unpinned tables (least recently used first); null at the ends.</summary>
    internal Qcow2CachedTable? Older { get; set; }

    internal Qcow2CachedTable? Newer { get; set; }

    /// <summary>True while the table is unpinned, so in the owner's eviction list.</summary>
    internal bool Evictable { get; set; }
}

/// <summary>
/// A bounded write-back cache of cluster-sized metadata tables (L2 tables or refcount blocks), QEMU's
/// <c>qcow2-cache.c</c>. Dirty tables are written when evicted or flushed. A cache can depend on another (the L2 cache
/// on the refcount cache): before any of its dirty tables is written, the other cache is written and the file flushed,
/// so that refcounts reach the disk before the L2 entries that use them. It can also depend on a plain file flush
/// (so that copied-on-write data reaches the disk before the L2 entry pointing at it).
/// </summary>
/// <remarks>
/// Not thread-safe: every call happens under the image's metadata lock. Lookup, pinning and eviction take constant
/// time whatever the capacity (an index by offset and a least-recently-used list of the unpinned tables): the cache
/// covers the whole disk of images up to 32 MiB of tables (8192 tables of 4 KiB), and a scan of every slot per lookup
/// made mapping such an image quadratic.
/// </remarks>
internal sealed class Qcow2MetadataCache
{
    private readonly BlockNode _file;
    private readonly List<Qcow2CachedTable> _tables;
    private readonly int _capacity;
    private readonly int _tableSize;
    private readonly Dictionary<long, Qcow2CachedTable> _index;
    private Qcow2CachedTable? _oldest;
    private Qcow2CachedTable? _newest;
    private Qcow2MetadataCache? _dependency;
    private bool _dependsOnFlush;

    /// <param name="name">"L2 table" or "refcount block", for messages.</param>
    /// <param name="file">The image file the tables live in.</param>
    /// <param name="capacity">How many tables to hold (at least 1).</param>
    /// <param name="tableSize">Size of each table: the cluster size.</param>
    /// <param name="flushFile">Makes the file durable (a no-op under cache=unsafe and during creation).</param>
    public Qcow2MetadataCache(string name, BlockNode file, int capacity, int tableSize, Func<CancellationToken, ValueTask> flushFile)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Name = name;
        _file = file;
        _tableSize = tableSize;
        _capacity = capacity;
        _tables = [];
        _index = [];

        FlushFile = flushFile;
    }

    public string Name { get; }

    /// <summary>Called after every table write sequence that must be durable before something else is written.</summary>
    public Func<CancellationToken, ValueTask> FlushFile { get; }

    /// <summary>Checks, before each table write, that the table does not overlap other metadata (may throw).</summary>
    public Action<long, int>? BeforeWrite { get; set; }

    /// <summary>
    /// Called when a <see cref="FlushAsync"/> starts; the action it returns (if any) runs once every table that was dirty
    /// at that moment is written and the file flushed. The refcounts use it to learn when dropped references are durable.
    /// </summary>
    public Func<Action?>? FlushObserver { get; set; }

    public int Capacity => _capacity;

    /// <summary>Gets the table at <paramref name="offset"/>, reading it from the file on a miss. Release it when done.</summary>
    public ValueTask<Qcow2CachedTable> GetAsync(long offset, CancellationToken cancellationToken) => GetCoreAsync(offset, true, cancellationToken);

    /// <summary>Gets a slot for a new table at <paramref name="offset"/> without reading the file (its contents are undefined).</summary>
    public ValueTask<Qcow2CachedTable> GetEmptyAsync(long offset, CancellationToken cancellationToken) => GetCoreAsync(offset, false, cancellationToken);

    private async ValueTask<Qcow2CachedTable> GetCoreAsync(long offset, bool read, CancellationToken cancellationToken)
    {
        if (offset < 0)
        {
            // A table offset with bit 63 set (a reserved bit) is cluster-aligned as QEMU sees it (an unsigned value);
            // its read fails as out of range, with EIO and no corruption event.
            throw Qcow2ThrowHelper.Errno(Qcow2ThrowHelper.EIO);
        }

        if (offset == 0 || offset % _tableSize != 0)
        {
            throw Qcow2ThrowHelper.CorruptionException($"Cannot get entry from {Name} cache: Offset {Qcow2ThrowHelper.Hex(offset)} is unaligned", fatal: true);
        }

        if (_index.TryGetValue(offset, out Qcow2CachedTable? cached))
        {
            Pin(cached);
            return cached;
        }

        // A free slot, else a new one while under the capacity (slots are allocated as they are needed: opening an
        // image to print its header costs no 32 MiB of zeroed tables), else the least recently used unpinned table.
        Qcow2CachedTable? victim = _oldest;
        if ((victim is null || victim.Offset != 0) && _tables.Count < _capacity)
        {
            victim = new Qcow2CachedTable(this, _tableSize);
            _tables.Add(victim);
        }

        if (victim is null)
        {
            // Callers pin at most a handful of tables at once; the minimum capacities cover them.
            throw new InvalidOperationException("qcow2 metadata cache exhausted");
        }

        await WriteEntryAsync(victim, cancellationToken).ConfigureAwait(false);
        Forget(victim);
        if (read)
        {
            try
            {
                await _file.ReadAsync(offset, victim.Data, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                // The slot holds no table now: first in line for the next miss.
                MakeOldest(victim);
                throw;
            }
        }

        victim.Offset = offset;
        _index.Add(offset, victim);
        Pin(victim);
        return victim;
    }

    /// <summary>Unpins a table obtained from this cache.</summary>
    public void Release(Qcow2CachedTable table)
    {
        if (table.Pins <= 0)
        {
            throw new InvalidOperationException("qcow2 metadata table released twice");
        }

        table.Pins--;
        if (table.Pins == 0)
        {
            AppendEvictable(table);
        }
    }

    /// <summary>Marks a pinned table as modified: it will be written back before it is evicted or at the next flush.</summary>
    public static void MarkDirty(Qcow2CachedTable table) => table.Dirty = true;

    /// <summary>The cached table at <paramref name="offset"/>, or null.</summary>
    public Qcow2CachedTable? Find(long offset) => offset != 0 && _index.TryGetValue(offset, out Qcow2CachedTable? table) ? table : null;

    /// <summary>Drops a table without writing it (its cluster was freed).</summary>
    public static void Discard(Qcow2CachedTable table)
    {
        Qcow2MetadataCache cache = table.Owner;
        cache.Forget(table);
        table.Dirty = false;
        if (table.Pins == 0)
        {
            cache.MakeOldest(table);
        }
    }

    /// <summary>Drops every table after writing the dirty ones.</summary>
    public async ValueTask EmptyAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        _index.Clear();
        for (int i = _tables.Count - 1; i >= 0; i--)
        {
            Qcow2CachedTable table = _tables[i];
            table.Offset = 0;
            if (table.Pins == 0)
            {
                MakeOldest(table);
            }
        }
    }

    /// <summary>
    /// Makes this cache's dirty tables wait for <paramref name="dependency"/>: before the next one is written,
    /// <paramref name="dependency"/> is flushed. Chains are not allowed, so an existing dependency is resolved first.
    /// </summary>
    public async ValueTask SetDependencyAsync(Qcow2MetadataCache dependency, CancellationToken cancellationToken)
    {
        if (dependency._dependency is not null)
        {
            await dependency.FlushDependencyAsync(cancellationToken).ConfigureAwait(false);
        }

        if (_dependency is not null && _dependency != dependency)
        {
            await FlushDependencyAsync(cancellationToken).ConfigureAwait(false);
        }

        _dependency = dependency;
    }

    /// <summary>Makes the next table write wait for a flush of the file (data written so far must be durable first).</summary>
    public void DependOnFlush() => _dependsOnFlush = true;

    /// <summary>Writes every dirty table (QEMU's qcow2_cache_write); does not flush the file afterwards.</summary>
    public async ValueTask WriteAsync(CancellationToken cancellationToken)
    {
        for (int i = 0; i < _tables.Count; i++)
        {
            await WriteEntryAsync(_tables[i], cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes every dirty table and flushes the file (QEMU's qcow2_cache_flush).</summary>
    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        Action? flushed = FlushObserver?.Invoke();
        await WriteAsync(cancellationToken).ConfigureAwait(false);
        await FlushFile(cancellationToken).ConfigureAwait(false);
        flushed?.Invoke();
    }

    public bool HasDirtyTables => _tables.Exists(t => t.Dirty && t.Offset != 0);

    private async ValueTask FlushDependencyAsync(CancellationToken cancellationToken)
    {
        await _dependency!.FlushAsync(cancellationToken).ConfigureAwait(false);
        _dependency = null;
        _dependsOnFlush = false;
    }

    private async ValueTask WriteEntryAsync(Qcow2CachedTable table, CancellationToken cancellationToken)
    {
        if (!table.Dirty || table.Offset == 0)
        {
            return;
        }

        // Ordering: whatever this table's contents rely on must be durable before the table itself is written.
        if (_dependency is not null)
        {
            await FlushDependencyAsync(cancellationToken).ConfigureAwait(false);
        }
        else if (_dependsOnFlush)
        {
            await FlushFile(cancellationToken).ConfigureAwait(false);
            _dependsOnFlush = false;
        }

        BeforeWrite?.Invoke(table.Offset, _tableSize);
        await _file.WriteAsync(table.Offset, table.Data, WriteFlags.None, cancellationToken).ConfigureAwait(false);
        table.Dirty = false;
    }

    /// <summary>Takes <paramref name="table"/> out of the index: its slot holds no table afterwards.</summary>
    private void Forget(Qcow2CachedTable table)
    {
        if (table.Offset != 0 && _index.TryGetValue(table.Offset, out Qcow2CachedTable? indexed) && indexed == table)
        {
            _index.Remove(table.Offset);
        }

        table.Offset = 0;
    }

    private void Pin(Qcow2CachedTable table)
    {
        if (table.Pins++ == 0)
        {
            Unlink(table);
        }
    }

    /// <summary>Makes <paramref name="table"/> the most recently used of the unpinned tables.</summary>
    private void AppendEvictable(Qcow2CachedTable table)
    {
        Unlink(table);
        table.Older = _newest;
        table.Newer = null;
        if (_newest is null)
        {
            _oldest = table;
        }
        else
        {
            _newest.Newer = table;
        }

        _newest = table;
        table.Evictable = true;
    }

    /// <summary>Makes <paramref name="table"/> the next to be evicted.</summary>
    private void MakeOldest(Qcow2CachedTable table)
    {
        Unlink(table);
        table.Newer = _oldest;
        table.Older = null;
        if (_oldest is null)
        {
            _newest = table;
        }
        else
        {
            _oldest.Older = table;
        }

        _oldest = table;
        table.Evictable = true;
    }

    private void Unlink(Qcow2CachedTable table)
    {
        if (!table.Evictable)
        {
            return;
        }

        if (table.Older is null)
        {
            _oldest = table.Newer;
        }
        else
        {
            table.Older.Newer = table.Newer;
        }

        if (table.Newer is null)
        {
            _newest = table.Older;
        }
        else
        {
            table.Newer.Older = table.Older;
        }

        table.Older = null;
        table.Newer = null;
        table.Evictable = false;
    }
}
