using System.Buffers;
using System.Buffers.Binary;
using Qimg.Block;

namespace Qimg.Formats.Qcow2;

public sealed partial class Qcow2Image
{
    /// <summary>Merge guest data with its COW regions into one write up to this size (larger ones are written separately).</summary>
    private const int MaxMergedWrite = 1 << 20;

    private bool _preparedForWriting;

    /// <summary>Wires the write-side policies into the subsystems (lazy refcounts, dirty bit, discard passthrough).</summary>
    private void ConfigureWriting()
    {
        bool lazy = _header.Version >= 3 && _header.HasLazyRefcounts;
        _map.UseLazyRefcounts = lazy;
        _map.MarkDirtyAsync = MarkDirtyAsync;
        _refcounts.NeedAccurateRefcounts = () => !_header.IsDirty;
        _refcounts.L2Cache.BeforeWrite = (offset, size) => CheckOverlap(offset, size, Overlap.ActiveL2);
        _refcounts.BlockCache.BeforeWrite = (offset, size) => CheckOverlap(offset, size, Overlap.RefcountBlock);
    }

    // ------------------------------------------------------------ write

    /// <summary>
    /// Writes guest data (QEMU's qcow2_co_pwritev_part). Per contiguous host extent: under the lock, find or allocate
    /// the clusters and register the allocation; without the lock, write the data together with the copy-on-write
    /// parts of partially written new clusters (from the backing file, an old cluster, or zeroes); under the lock
    /// again, point the L2 entries at the new clusters (behind the refcount updates, through the cache dependency).
    /// </summary>
    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        ThrowIfDataFileMissing();
        MarkBitmapsDirty(offset, data.Length);
        if ((flags & WriteFlags.Compressed) != 0)
        {
            await WriteCompressedAsync(offset, data, cancellationToken).ConfigureAwait(false);
            return;
        }

        await PrepareForWritingAsync(cancellationToken).ConfigureAwait(false);
        while (!data.IsEmpty)
        {
            long hostOffset;
            long bytes;
            List<Qcow2Allocation> allocations;
            await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                (hostOffset, bytes, allocations) = await _map.AllocateHostOffsetAsync(offset, data.Length, cancellationToken).ConfigureAwait(false);
                try
                {
                    CheckOverlap(hostOffset, bytes, Overlap.None, isData: true);
                }
                catch
                {
                    await _map.AbortAllocationsAsync(allocations, cancellationToken).ConfigureAwait(false);
                    throw;
                }
            }
            catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
            {
                await SignalCorruptionAsync(e).ConfigureAwait(false);
                throw;
            }
            finally
            {
                _lock.Release();
            }

            await WriteAllocatedAsync(hostOffset, offset, data[..(int)bytes], allocations, cancellationToken).ConfigureAwait(false);
            offset += bytes;
            data = data[(int)bytes..];
        }

        if ((flags & WriteFlags.Fua) != 0)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes data (and COW) for allocations made by AllocateHostOffsetAsync, then links or aborts them.</summary>
    private async ValueTask WriteAllocatedAsync(long hostOffset, long guestOffset, ReadOnlyMemory<byte> data, List<Qcow2Allocation> allocations, CancellationToken cancellationToken)
    {
        bool cowWritten = false;
        try
        {
            Qcow2Allocation? merged = FindMergeableCow(guestOffset, data.Length, allocations);
            if (merged is null)
            {
                await _dataFile.WriteAsync(hostOffset, data, WriteFlags.None, cancellationToken).ConfigureAwait(false);
            }

            foreach (Qcow2Allocation allocation in allocations)
            {
                if (allocation.HasCow && !allocation.SkipCow)
                {
                    await PerformCowAsync(allocation, allocation == merged, data, cancellationToken).ConfigureAwait(false);
                    cowWritten = true;
                }
            }
        }
        catch
        {
            await _lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                await _map.AbortAllocationsAsync(allocations, CancellationToken.None).ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }

            throw;
        }

        await _lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (cowWritten)
            {
                // Copied data must be durable before an L2 entry points at it.
                _map.L2Cache.DependOnFlush();
            }

            for (int i = 0; i < allocations.Count; i++)
            {
                try
                {
                    await _map.LinkAllocationAsync(allocations[i], cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    await _map.AbortAllocationsAsync(allocations.GetRange(i + 1, allocations.Count - i - 1), CancellationToken.None).ConfigureAwait(false);
                    throw;
                }
            }
        }
        catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
        {
            await SignalCorruptionAsync(e).ConfigureAwait(false);
            throw;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>The allocation whose COW regions sit right before and after the written bytes (QEMU's merge_cow).</summary>
    private static Qcow2Allocation? FindMergeableCow(long guestOffset, int bytes, List<Qcow2Allocation> allocations)
    {
        if (bytes > MaxMergedWrite)
        {
            return null;
        }

        foreach (Qcow2Allocation m in allocations)
        {
            if (!m.HasCow || m.SkipCow)
            {
                continue;
            }

            if (m.CowStartGuest + m.CowStart.Bytes == guestOffset && m.GuestOffset + m.CowEnd.Offset == guestOffset + bytes)
            {
                return m;
            }
        }

        return null;
    }

    /// <summary>
    /// Copies the untouched parts of newly allocated clusters (QEMU's perform_cow): reads them through this image (the
    /// allocation is not linked yet, so the old contents show: backing file, old cluster or zeroes) and writes them to
    /// the new clusters, with the guest <paramref name="data"/> in between when <paramref name="merge"/> is set.
    /// </summary>
    private async ValueTask PerformCowAsync(Qcow2Allocation m, bool merge, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        (int startOffset, int startBytes) = m.CowStart;
        (int endOffset, int endBytes) = m.CowEnd;
        int dataBytes = endOffset - (startOffset + startBytes);
        int total = startBytes + dataBytes + endBytes;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            Memory<byte> span = buffer.AsMemory(0, total);
            if (startBytes != 0 && endBytes != 0 && dataBytes <= 16384)
            {
                await ReadCoreAsync(m.GuestOffset + startOffset, span, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                if (startBytes != 0)
                {
                    await ReadCoreAsync(m.GuestOffset + startOffset, span[..startBytes], cancellationToken).ConfigureAwait(false);
                }

                if (endBytes != 0)
                {
                    await ReadCoreAsync(m.GuestOffset + endOffset, span[(startBytes + dataBytes)..], cancellationToken).ConfigureAwait(false);
                }
            }

            if (merge)
            {
                data.Span.CopyTo(span.Span[startBytes..]);
                await _dataFile.WriteAsync(m.HostOffset + startOffset, span, WriteFlags.None, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                if (startBytes != 0)
                {
                    await _dataFile.WriteAsync(m.HostOffset + startOffset, span[..startBytes], WriteFlags.None, cancellationToken).ConfigureAwait(false);
                }

                if (endBytes != 0)
                {
                    await _dataFile.WriteAsync(m.HostOffset + endOffset, span[(startBytes + dataBytes)..], WriteFlags.None, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Writes whole clusters compressed (QEMU's qcow2_co_pwritev_compressed_part): each cluster (the last one of an
    /// image whose size is not cluster aligned is padded with zeroes) is compressed outside the lock; when it does not
    /// shrink below a cluster it is written normally. The guest clusters must be unallocated.
    /// </summary>
    /// <exception cref="NotSupportedException">The image has an external data file.</exception>
    /// <exception cref="ArgumentException">The request is not cluster aligned.</exception>
    private async ValueTask WriteCompressedAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        using CompressedWrite write = PrepareCompressed(offset, data);
        await write.CommitCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Compressed writes are prepared (compressed, on the caller's thread) apart from being committed (allocated and
    /// written under the lock), so that convert can compress on every core and still allocate in guest order.
    /// </summary>
    protected override ValueTask<PreparedWrite?> PrepareWriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
    {
        if ((flags & WriteFlags.Compressed) == 0)
        {
            return ValueTask.FromResult<PreparedWrite?>(null);
        }

        ThrowIfFailed();
        ThrowIfDataFileMissing();
        return ValueTask.FromResult<PreparedWrite?>(PrepareCompressed(offset, data));
    }

    private CompressedWrite PrepareCompressed(long offset, ReadOnlyMemory<byte> data)
    {
        if (HasExternalDataFile)
        {
            throw new NotSupportedException("qcow2: compressed writes are not supported with an external data file");
        }

        int clusterSize = _header.ClusterSize;
        if ((offset & (clusterSize - 1)) != 0 || ((data.Length & (clusterSize - 1)) != 0 && offset + data.Length != Length))
        {
            throw new ArgumentException("Compressed writes must cover whole clusters", nameof(offset));
        }

        var write = new CompressedWrite(this, offset, data);
        try
        {
            byte[] cluster = ArrayPool<byte>.Shared.Rent(clusterSize);
            try
            {
                for (int position = 0; position < data.Length; position += clusterSize)
                {
                    int chunk = Math.Min(clusterSize, data.Length - position);
                    data.Span.Slice(position, chunk).CopyTo(cluster);
                    cluster.AsSpan(chunk, clusterSize - chunk).Clear();
                    byte[] compressed = ArrayPool<byte>.Shared.Rent(clusterSize);
                    int length = Qcow2Compression.Compress(_header.CompressionType, cluster.AsSpan(0, clusterSize), compressed.AsSpan(0, clusterSize - 1));
                    write.Add(compressed, length);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(cluster);
            }

            return write;
        }
        catch
        {
            write.Dispose();
            throw;
        }
    }

    /// <summary>Clusters compressed ahead of their allocation (QEMU's qcow2_co_pwritev_compressed_task, in two halves).</summary>
    private sealed class CompressedWrite : PreparedWrite
    {
        private readonly Qcow2Image _image;
        private readonly long _offset;
        private readonly ReadOnlyMemory<byte> _data;
        private readonly List<(byte[] Buffer, int Length)> _clusters = [];

        public CompressedWrite(Qcow2Image image, long offset, ReadOnlyMemory<byte> data)
        {
            _image = image;
            _offset = offset;
            _data = data;
        }

        public void Add(byte[] buffer, int length) => _clusters.Add((buffer, length));

        public override async ValueTask CommitAsync(CancellationToken cancellationToken = default)
        {
            _image.ThrowIfFailed();
            _image.ThrowIfDataFileMissing();
            _image.MarkBitmapsDirty(_offset, _data.Length);
            await CommitCoreAsync(cancellationToken).ConfigureAwait(false);
        }

        /// <summary>Each cluster: stored normally when it did not shrink below a cluster, else allocated packed and written.</summary>
        public async ValueTask CommitCoreAsync(CancellationToken cancellationToken)
        {
            await _image.PrepareForWritingAsync(cancellationToken).ConfigureAwait(false);
            int clusterSize = _image._header.ClusterSize;
            long offset = _offset;
            ReadOnlyMemory<byte> data = _data;
            foreach ((byte[] compressed, int length) in _clusters)
            {
                int chunk = Math.Min(clusterSize, data.Length);
                if (length < 0)
                {
                    // Incompressible: stored as a normal cluster.
                    await _image.WriteCoreAsync(offset, data[..chunk], WriteFlags.None, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    long hostOffset;
                    await _image._lock.WaitAsync(cancellationToken).ConfigureAwait(false);
                    try
                    {
                        hostOffset = await _image._map.AllocateCompressedAsync(offset, length, cancellationToken).ConfigureAwait(false);
                        _image.CheckOverlap(hostOffset, length, Overlap.None, isData: true);
                    }
                    catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
                    {
                        await _image.SignalCorruptionAsync(e).ConfigureAwait(false);
                        throw;
                    }
                    finally
                    {
                        _image._lock.Release();
                    }

                    await _image.File.WriteAsync(hostOffset, compressed.AsMemory(0, length), WriteFlags.None, cancellationToken).ConfigureAwait(false);
                }

                offset += chunk;
                data = data[chunk..];
            }
        }

        protected override void Dispose(bool disposing)
        {
            foreach ((byte[] buffer, _) in _clusters)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            _clusters.Clear();
        }
    }

    /// <summary>
    /// Ends a run of compressed writes (QEMU's zero-length compressed write): the file is extended to a whole number of
    /// sectors, so that the last compressed cluster can be read with sector-sized requests.
    /// </summary>
    public override async ValueTask CompleteCompressedWritesAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfFailed();
        if (!HasExternalDataFile)
        {
            await File.TruncateAsync(File.Length, PreallocationMode.Off, false, cancellationToken).ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------ zero writes and discards

    /// <summary>
    /// QEMU's qcow2_co_pwrite_zeroes behind the generic layer's split at subcluster boundaries: whole subclusters become
    /// zero clusters (or zero subclusters) through metadata; a partial subcluster does too when the rest of it already
    /// reads as zero, and otherwise gets explicit zeroes. Version 2 images without a backing file discard instead;
    /// with one they get explicit zeroes.
    /// </summary>
    protected override async ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        MarkBitmapsDirty(offset, length);
        bool noFallback = (flags & ZeroFlags.NoFallback) != 0;
        if (_header.Version < 3 && noFallback)
        {
            return false;
        }

        await PrepareForWritingAsync(cancellationToken).ConfigureAwait(false);
        bool mayUnmap = (flags & ZeroFlags.MayUnmap) != 0 && _header.Version >= 3;
        long alignment = _map.SubclusterSize;
        long end = offset + length;
        while (offset < end)
        {
            long pieceEnd = offset % alignment != 0
                ? Math.Min(end, (offset / alignment + 1) * alignment)
                : (end - offset >= alignment ? end - (end % alignment) : end);
            long piece = pieceEnd - offset;
            if (!await ZeroPieceAsync(offset, piece, mayUnmap, cancellationToken).ConfigureAwait(false))
            {
                if (noFallback)
                {
                    return false;
                }

                await WriteZeroBuffersAsync(offset, piece, cancellationToken).ConfigureAwait(false);
            }

            offset = pieceEnd;
        }

        if ((flags & ZeroFlags.Fua) != 0)
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    private async ValueTask<bool> ZeroPieceAsync(long offset, long bytes, bool mayUnmap, CancellationToken cancellationToken)
    {
        long subcluster = _map.SubclusterSize;
        long head = offset % subcluster;
        long end = offset + bytes;
        long tail = (end + subcluster - 1) / subcluster * subcluster - end;
        if (end == Length)
        {
            tail = 0;
        }

        if (head != 0 || tail != 0)
        {
            if (!await IsZeroAsync(offset - head, head, cancellationToken).ConfigureAwait(false)
                || !await IsZeroAsync(end, tail, cancellationToken).ConfigureAwait(false))
            {
                return false;
            }

            offset -= head;
            bytes = subcluster;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (head != 0 || tail != 0)
            {
                // A write may have come in since the check.
                Qcow2Mapping mapping = await _map.GetHostOffsetAsync(offset, bytes, cancellationToken).ConfigureAwait(false);
                if (mapping.Type is not (Qcow2SubclusterType.UnallocatedPlain or Qcow2SubclusterType.UnallocatedAllocated
                    or Qcow2SubclusterType.ZeroPlain or Qcow2SubclusterType.ZeroAllocated))
                {
                    return false;
                }
            }

            if (_header.IsDataFileRaw)
            {
                // The raw data file must read the same as the image.
                await _dataFile.WriteZeroesAsync(offset, Math.Min(bytes, Length - offset), mayUnmap ? ZeroFlags.MayUnmap : ZeroFlags.None, cancellationToken).ConfigureAwait(false);
            }

            return await _map.ZeroizeAsync(offset, bytes, mayUnmap, Length, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
        {
            await SignalCorruptionAsync(e).ConfigureAwait(false);
            throw;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Whether the whole range reads as zero through the backing chain (QEMU's is_zero in qcow2.c).</summary>
    private async ValueTask<bool> IsZeroAsync(long offset, long bytes, CancellationToken cancellationToken)
    {
        bytes = Math.Min(bytes, Length - offset);
        while (bytes > 0)
        {
            ChainBlockStatus status = await BackingChain.GetBlockStatusAboveAsync(this, null, false, offset, bytes, true, cancellationToken).ConfigureAwait(false);
            if (!status.Status.IsZero || status.Status.Length == 0)
            {
                return false;
            }

            offset += status.Status.Length;
            bytes -= status.Status.Length;
        }

        return true;
    }

    private async ValueTask WriteZeroBuffersAsync(long offset, long length, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, Buffers.ZeroBuffer.Size);
            await WriteCoreAsync(offset, Buffers.ZeroBuffer.Memory[..chunk], WriteFlags.None, cancellationToken).ConfigureAwait(false);
            offset += chunk;
            length -= chunk;
        }
    }

    /// <summary>
    /// Discards whole clusters (QEMU's qcow2_co_pdiscard behind the generic layer's cluster alignment): partial clusters
    /// are ignored except the last one of an image whose size is not cluster aligned. Discarded clusters read as zero
    /// (version 3), or as the backing file where version 2 leaves them unallocated. Version 2 images with a backing file
    /// ignore discards, since the backing file's data would show through.
    /// </summary>
    protected override async ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        MarkBitmapsDirty(offset, length);
        if (_header.Version < 3 && Backing is not null)
        {
            return;
        }

        long clusterSize = _header.ClusterSize;
        long end = offset + length;
        long start = (offset + clusterSize - 1) / clusterSize * clusterSize;
        long alignedEnd = end == Length ? end : end / clusterSize * clusterSize;
        if (alignedEnd <= start)
        {
            return;
        }

        await PrepareForWritingAsync(cancellationToken).ConfigureAwait(false);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _map.DiscardClustersAsync(start, alignedEnd - start, Qcow2DiscardType.Request, false, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException e) when (Qcow2ThrowHelper.IsCorruption(e))
        {
            await SignalCorruptionAsync(e).ConfigureAwait(false);
            throw;
        }
        finally
        {
            _lock.Release();
        }
    }

    // ------------------------------------------------------------ flush, dirty bit, close

    /// <summary>Writes cached L2 tables and (unless lazy refcounts keep the image dirty) refcount blocks, in dependency order.</summary>
    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await WriteCachesAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>QEMU's qcow2_write_caches: L2 tables (after the refcounts they depend on), then refcount blocks.</summary>
    private async ValueTask WriteCachesAsync(CancellationToken cancellationToken)
    {
        await _map.L2Cache.WriteAsync(cancellationToken).ConfigureAwait(false);
        if (!_header.IsDirty)
        {
            await _refcounts.BlockCache.WriteAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sets the dirty bit in the header (durably) before the first L2 update made with lazy refcounts (QEMU's
    /// qcow2_mark_dirty): from then on refcounts may lag behind, and an unclean shutdown leaves the bit set.
    /// </summary>
    private async ValueTask MarkDirtyAsync(CancellationToken cancellationToken)
    {
        if (_header.IsDirty || _header.Version < 3)
        {
            return;
        }

        await WriteHeaderFieldAsync(Qcow2Layout.IncompatibleFeaturesOffset, _header.IncompatibleFeatures | Qcow2Layout.IncompatDirty, cancellationToken).ConfigureAwait(false);
        _header.IncompatibleFeatures |= Qcow2Layout.IncompatDirty;
    }

    /// <summary>
    /// QEMU's close (qcow2_inactivate): store the persistent bitmaps, write both caches back, then clear the dirty bit
    /// (unless storing the bitmaps failed).
    /// </summary>
    private async ValueTask CloseCleanlyAsync(CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            bool bitmapsStored = await StoreBitmapsOnCloseAsync(cancellationToken).ConfigureAwait(false);
            await _map.L2Cache.FlushAsync(cancellationToken).ConfigureAwait(false);
            await _refcounts.BlockCache.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (_header.IsDirty && bitmapsStored)
            {
                // Clear the bit first so that the refcount blocks are written too, then rewrite the header.
                _header.IncompatibleFeatures &= ~Qcow2Layout.IncompatDirty;
                await WriteCachesAsync(cancellationToken).ConfigureAwait(false);
                await FlushFileAsync(cancellationToken).ConfigureAwait(false);
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
            }

            await FlushFileAsync(cancellationToken).ConfigureAwait(false);
            if (HasExternalDataFile && !_dataFile.IsReadOnly && _flushFile)
            {
                await _dataFile.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Before the first modification: clears unknown auto-clear feature bits (already done when the image was opened
    /// for writing, as QEMU does; kept for images whose header changed since).
    /// </summary>
    private async ValueTask PrepareForWritingAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _preparedForWriting))
        {
            return;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_preparedForWriting)
            {
                return;
            }

            if ((_header.AutoclearFeatures & ~Qcow2Layout.AutoclearKnownMask) != 0)
            {
                // Auto-clear features qimg does not know must be cleared before the image is modified.
                _header.AutoclearFeatures &= Qcow2Layout.AutoclearKnownMask;
                await WriteHeaderAsync(cancellationToken).ConfigureAwait(false);
                await FlushFileAsync(cancellationToken).ConfigureAwait(false);
            }

            Volatile.Write(ref _preparedForWriting, true);
        }
        finally
        {
            _lock.Release();
        }
    }

    // ------------------------------------------------------------ metadata overlap check

    [Flags]
    private enum Overlap
    {
        None = 0,
        ActiveL2 = 1,
        RefcountBlock = 2,
    }

    /// <summary>
    /// QEMU's pre-write overlap check with its default "cached" set: refuses a write that would land on the header, the
    /// active L1 table, an active L2 table, the refcount table or a refcount block, the snapshot table, an inactive L1
    /// table or the bitmap directory. <paramref name="ignore"/> names the kind of table being written.
    /// </summary>
    private void CheckOverlap(long offset, long size, Overlap ignore, bool isData = false)
    {
        if (size <= 0 || (isData && HasExternalDataFile))
        {
            return;
        }

        string? hit = FindOverlap(offset, size, ignore);
        if (hit is not null)
        {
            Qcow2ThrowHelper.Corruption($"Preventing invalid write on metadata (overlaps with {hit})");
        }
    }

    private string? FindOverlap(long offset, long size, Overlap ignore)
    {
        long clusterSize = _header.ClusterSize;
        if (offset < clusterSize)
        {
            return "qcow2_header";
        }

        long end = (offset + size + clusterSize - 1) / clusterSize * clusterSize;
        offset = offset / clusterSize * clusterSize;
        bool Overlaps(long start, long length) => length > 0 && start < end && offset < start + length;

        if (_map.L1Size > 0 && Overlaps(_map.L1TableOffset, (long)_map.L1Size * Qcow2Layout.L1EntrySize))
        {
            return "active L1 table";
        }

        if (Overlaps(_refcounts.TableOffset, (long)_refcounts.TableSize * Qcow2Layout.RefcountTableEntrySize))
        {
            return "refcount table";
        }

        if (_snapshots.Count > 0 && Overlaps((long)_header.SnapshotsOffset, _snapshotTableBytes ?? Qcow2Snapshots.TableSize(_snapshots)))
        {
            return "snapshot table";
        }

        foreach (Qcow2Snapshot snapshot in _snapshots)
        {
            if (snapshot.L1Size != 0 && Overlaps((long)snapshot.L1TableOffset, (long)snapshot.L1Size * Qcow2Layout.L1EntrySize))
            {
                return "inactive L1 table";
            }
        }

        if ((ignore & Overlap.ActiveL2) == 0)
        {
            for (int i = 0; i < _map.L1Size; i++)
            {
                long l2 = (long)(_map.L1Entry(i) & Qcow2Layout.L1OffsetMask);
                if (l2 != 0 && Overlaps(l2, clusterSize))
                {
                    return "active L2 table";
                }
            }
        }

        if ((ignore & Overlap.RefcountBlock) == 0)
        {
            for (int i = 0; i < _refcounts.TableSize; i++)
            {
                long block = _refcounts.TableEntry(i);
                if (block != 0 && Overlaps(block, clusterSize))
                {
                    return "refcount block";
                }
            }
        }

        if ((_header.AutoclearFeatures & Qcow2Layout.AutoclearBitmaps) != 0
            && Overlaps((long)_header.BitmapDirectoryOffset, (long)_header.BitmapDirectorySize))
        {
            return "bitmap directory";
        }

        return null;
    }
}
