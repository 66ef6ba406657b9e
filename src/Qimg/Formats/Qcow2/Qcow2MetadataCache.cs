using Qimg.Block;

namespace Qimg.Formats.Qcow2;

/// <summary>A table held by a <see cref="Qcow2MetadataCache"/>: one cluster of metadata and its bookkeeping.</summary>
internal sealed class Qcow2CachedTable
{
    internal Qcow2CachedTable(int size)
    {
        Data = new byte[size];
    }

    /// <summary>Host offset of the table in the image file; 0 when the slot is free.</summary>
    public long Offset { get; internal set; }

    /// <summary>The table's bytes, big endian as on disk. Mutate only under the image lock, then call MarkDirty.</summary>
    public byte[] Data { get; }

    internal int Pins { get; set; }

    internal bool Dirty { get; set; }

    internal long LastUse { get; set; }
}

/// <summary>
/// A bounded write-back cache of cluster-sized metadata tables (L2 tables or refcount blocks), QEMU's
/// <c>qcow2-cache.c</c>. Dirty tables are written when evicted or flushed. A cache can depend on another (the L2 cache
/// on the refcount cache): before any of its dirty tables is written, the other cache is written and the file flushed,
/// so that refcounts reach the disk before the L2 entries that use them. It can also depend on a plain file flush
/// (so that copied-on-write data reaches the disk before the L2 entry pointing at it).
/// </summary>
/// <remarks>Not thread-safe: every call happens under the image's metadata lock.</remarks>
internal sealed class Qcow2MetadataCache
{
    private readonly BlockNode _file;
    private readonly Qcow2CachedTable[] _tables;
    private readonly int _tableSize;
    private long _useCounter;
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
        _tables = new Qcow2CachedTable[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _tables[i] = new Qcow2CachedTable(tableSize);
        }

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

    public int Capacity => _tables.Length;

    /// <summary>Gets the table at <paramref name="offset"/>, reading it from the file on a miss. Release it when done.</summary>
    public ValueTask<Qcow2CachedTable> GetAsync(long offset, CancellationToken cancellationToken) => GetCoreAsync(offset, true, cancellationToken);

    /// <summary>Gets a slot for a new table at <paramref name="offset"/> without reading the file (its contents are undefined).</summary>
    public ValueTask<Qcow2CachedTable> GetEmptyAsync(long offset, CancellationToken cancellationToken) => GetCoreAsync(offset, false, cancellationToken);

    private async ValueTask<Qcow2CachedTable> GetCoreAsync(long offset, bool read, CancellationToken cancellationToken)
    {
        if (offset <= 0 || offset % _tableSize != 0)
        {
            throw Qcow2ThrowHelper.CorruptionException($"Cannot get entry from {Name} cache: Offset {Qcow2ThrowHelper.Hex(offset)} is unaligned", fatal: true);
        }

        Qcow2CachedTable? victim = null;
        foreach (Qcow2CachedTable table in _tables)
        {
            if (table.Offset == offset)
            {
                table.Pins++;
                return table;
            }

            if (table.Pins == 0 && (victim is null || table.LastUse < victim.LastUse))
            {
                victim = table;
            }
        }

        if (victim is null)
        {
            // Callers pin at most a handful of tables at once; the minimum capacities cover them.
            throw new InvalidOperationException("qcow2 metadata cache exhausted");
        }

        await WriteEntryAsync(victim, cancellationToken).ConfigureAwait(false);
        victim.Offset = 0;
        if (read)
        {
            await _file.ReadAsync(offset, victim.Data, cancellationToken).ConfigureAwait(false);
        }

        victim.Offset = offset;
        victim.Pins = 1;
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
            table.LastUse = ++_useCounter;
        }
    }

    /// <summary>Marks a pinned table as modified: it will be written back before it is evicted or at the next flush.</summary>
    public static void MarkDirty(Qcow2CachedTable table) => table.Dirty = true;

    /// <summary>The cached table at <paramref name="offset"/>, or null.</summary>
    public Qcow2CachedTable? Find(long offset) => Array.Find(_tables, t => t.Offset == offset && offset != 0);

    /// <summary>Drops a table without writing it (its cluster was freed).</summary>
    public static void Discard(Qcow2CachedTable table)
    {
        table.Offset = 0;
        table.LastUse = 0;
        table.Dirty = false;
    }

    /// <summary>Drops every table after writing the dirty ones.</summary>
    public async ValueTask EmptyAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        foreach (Qcow2CachedTable table in _tables)
        {
            table.Offset = 0;
            table.LastUse = 0;
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
        foreach (Qcow2CachedTable table in _tables)
        {
            await WriteEntryAsync(table, cancellationToken).ConfigureAwait(false);
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

    public bool HasDirtyTables => Array.Exists(_tables, t => t.Dirty && t.Offset != 0);

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
}
