using System.Buffers.Binary;

namespace Qimg.Formats.Qcow2;

public sealed partial class Qcow2Image
{
    /// <summary>
    /// Repairs the refcounts of an image left dirty by lazy refcounts (QEMU repairs on a writable open too): every
    /// reference from the metadata is counted (header, L1/L2 tables and their clusters for the active state and every
    /// snapshot, refcount structures, snapshot table, bitmaps, encryption header), refcounts that differ are set to the
    /// counted value, and the dirty bit is cleared.
    /// </summary>
    /// <remarks>
    /// Refcounts are fixed in place. QEMU rebuilds the whole refcount structure when a referenced cluster has refcount 0;
    /// qimg only does so when a refcount block is missing, and then fails with the advice to run
    /// <c>qemu-img check -r all</c>.
    /// </remarks>
    private async ValueTask RepairDirtyAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Qcow2ReferenceCounter expected = await CountReferencesAsync(cancellationToken).ConfigureAwait(false);
            long clusterCount = Math.Max(expected.MaxClusterIndex + 1, (File.Length + _header.ClusterSize - 1) >> _header.ClusterBits);
            ulong maxRefcount = Qcow2RefcountBlock.MaxRefcount(_header.RefcountOrder);
            for (long i = 0; i < clusterCount; i++)
            {
                ulong want = expected.Get(i);
                ulong have = await _refcounts.GetRefcountAsync(i, cancellationToken).ConfigureAwait(false);
                if (want == have)
                {
                    continue;
                }

                if (want > maxRefcount)
                {
                    throw new IOException("Could not repair dirty image: Invalid argument");
                }

                long tableIndex = i / _refcounts.BlockEntries;
                if (tableIndex >= _refcounts.TableSize || _refcounts.TableEntry((int)tableIndex) == 0)
                {
                    throw new IOException("Could not repair dirty image: a refcount block is missing; run 'qemu-img check -r all' on the image");
                }

                bool decrease = want < have;
                bool again = await _refcounts.UpdateRefcountAsync(i << _header.ClusterBits, 1, decrease ? have - want : want - have, decrease, Qcow2DiscardType.Never, cancellationToken).ConfigureAwait(false);
                if (again)
                {
                    throw new IOException("Could not repair dirty image: Input/output error");
                }
            }

            _header.IncompatibleFeatures &= ~Qcow2Layout.IncompatDirty;
            await _refcounts.BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
            await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            await FlushFileAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Counts every reference the metadata makes to host clusters (QEMU's calculate_refcounts).</summary>
    private async ValueTask<Qcow2ReferenceCounter> CountReferencesAsync(CancellationToken cancellationToken)
    {
        int clusterSize = _header.ClusterSize;
        var counter = new Qcow2ReferenceCounter(_header.ClusterBits);
        counter.Add(0, clusterSize);

        counter.Add(_map.L1TableOffset, (long)_map.L1Size * Qcow2Layout.L1EntrySize);
        for (int i = 0; i < _map.L1Size; i++)
        {
            await CountL2Async(counter, (long)(_map.L1Entry(i) & Qcow2Layout.L1OffsetMask), cancellationToken).ConfigureAwait(false);
        }

        foreach (Qcow2Snapshot snapshot in _snapshots)
        {
            if ((long)snapshot.L1Size * Qcow2Layout.L1EntrySize > Qcow2Layout.MaxL1TableBytes)
            {
                throw new InvalidDataException("Snapshot L1 table too large");
            }

            counter.Add((long)snapshot.L1TableOffset, (long)snapshot.L1Size * Qcow2Layout.L1EntrySize);
            byte[] l1 = new byte[(long)snapshot.L1Size * Qcow2Layout.L1EntrySize];
            await File.ReadAsync((long)snapshot.L1TableOffset, l1, cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < snapshot.L1Size; i++)
            {
                ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l1.AsSpan(i * 8));
                await CountL2Async(counter, (long)(entry & Qcow2Layout.L1OffsetMask), cancellationToken).ConfigureAwait(false);
            }
        }

        counter.Add(_refcounts.TableOffset, (long)_refcounts.TableSize * Qcow2Layout.RefcountTableEntrySize);
        for (int i = 0; i < _refcounts.TableSize; i++)
        {
            long block = _refcounts.TableEntry(i);
            if (block != 0)
            {
                counter.Add(block, clusterSize);
            }
        }

        if (_snapshots.Count > 0)
        {
            counter.Add((long)_header.SnapshotsOffset, Qcow2Snapshots.TableSize(_snapshots));
        }

        if (_bitmaps.Count > 0 && (_header.AutoclearFeatures & Qcow2Layout.AutoclearBitmaps) != 0)
        {
            counter.Add((long)_header.BitmapDirectoryOffset, (long)_header.BitmapDirectorySize);
            foreach (Qcow2Bitmap bitmap in _bitmaps)
            {
                counter.Add((long)bitmap.TableOffset, (long)bitmap.TableSize * 8);
                byte[] table = new byte[(long)bitmap.TableSize * 8];
                await File.ReadAsync((long)bitmap.TableOffset, table, cancellationToken).ConfigureAwait(false);
                for (int i = 0; i < bitmap.TableSize; i++)
                {
                    long data = (long)(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(i * 8)) & Qcow2Layout.L2OffsetMask);
                    if (data != 0)
                    {
                        counter.Add(data, clusterSize);
                    }
                }
            }
        }

        if (_header.CryptoHeaderOffset != 0)
        {
            counter.Add((long)_header.CryptoHeaderOffset, (long)_header.CryptoHeaderLength);
        }

        return counter;
    }

    private async ValueTask CountL2Async(Qcow2ReferenceCounter counter, long l2Offset, CancellationToken cancellationToken)
    {
        if (l2Offset == 0)
        {
            return;
        }

        if ((l2Offset & (_header.ClusterSize - 1)) != 0)
        {
            throw new InvalidDataException($"L2 table offset {Qcow2ThrowHelper.Hex(l2Offset)} unaligned");
        }

        counter.Add(l2Offset, _header.ClusterSize);
        Qcow2CachedTable table = await _map.L2Cache.GetAsync(l2Offset, cancellationToken).ConfigureAwait(false);
        try
        {
            for (int i = 0; i < _map.L2Size; i++)
            {
                Qcow2L2Entry entry = _map.GetEntry(table, i);
                switch (_map.ClusterType(entry))
                {
                    case Qcow2ClusterType.Compressed:
                        long offset = entry.CompressedOffset(_header.ClusterBits);
                        int sectors = (entry.CompressedLength(_header.ClusterBits) + (int)(offset & 511)) / 512;
                        counter.Add(offset & ~511L, (long)sectors * 512);
                        break;
                    case Qcow2ClusterType.Normal:
                    case Qcow2ClusterType.ZeroAllocated:
                        if (!HasExternalDataFile)
                        {
                            counter.Add(entry.HostClusterOffset, _header.ClusterSize);
                        }

                        break;
                }
            }
        }
        finally
        {
            _map.L2Cache.Release(table);
        }
    }
}

/// <summary>A sparse array of expected refcounts, one per host cluster.</summary>
internal sealed class Qcow2ReferenceCounter
{
    private const int ChunkBits = 16;
    private readonly Dictionary<long, ulong[]> _chunks = [];
    private readonly int _clusterBits;

    public Qcow2ReferenceCounter(int clusterBits)
    {
        _clusterBits = clusterBits;
    }

    /// <summary>The highest cluster index counted, or -1.</summary>
    public long MaxClusterIndex { get; private set; } = -1;

    /// <summary>Adds one reference to every cluster touching [offset, offset + length).</summary>
    public void Add(long offset, long length)
    {
        if (length <= 0)
        {
            return;
        }

        long first = offset >> _clusterBits;
        long last = (offset + length - 1) >> _clusterBits;
        for (long i = first; i <= last; i++)
        {
            long key = i >> ChunkBits;
            if (!_chunks.TryGetValue(key, out ulong[]? chunk))
            {
                chunk = new ulong[1 << ChunkBits];
                _chunks[key] = chunk;
            }

            chunk[i & ((1 << ChunkBits) - 1)]++;
            MaxClusterIndex = Math.Max(MaxClusterIndex, i);
        }
    }

    public ulong Get(long clusterIndex) =>
        _chunks.TryGetValue(clusterIndex >> ChunkBits, out ulong[]? chunk) ? chunk[clusterIndex & ((1 << ChunkBits) - 1)] : 0;
}
