using Qimg.Block;

namespace Qimg.Formats.Qcow2;

public sealed partial class Qcow2Image
{
    /// <summary>
    /// Resizes the virtual disk (QEMU's qcow2_co_truncate). Growing enlarges the L1 table and, with
    /// <paramref name="preallocation"/>, allocates the new area: metadata only, or metadata plus reserved
    /// (falloc) or zero-written (full) data clusters placed after fresh refcount structures. Shrinking frees the clusters
    /// past the new end, shrinks the L1 table and truncates the file after its last used cluster.
    /// </summary>
    /// <exception cref="Operations.OperationException">The size is not a multiple of 512.</exception>
    /// <exception cref="IOException">Growing the L1 table failed ("Failed to grow the L1 table: …", HResult the errno).</exception>
    /// <exception cref="NotSupportedException">Shrinking with preallocation, a version 2 image with snapshots, or a persistent bitmap that is inconsistent.</exception>
    protected override async ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        if (length % 512 != 0)
        {
            throw new Operations.OperationException("The new size must be a multiple of 512");
        }

        await PrepareForWritingAsync(cancellationToken).ConfigureAwait(false);
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ResizeLockedAsync(length, preallocation, exact, cancellationToken).ConfigureAwait(false);
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

    private async ValueTask ResizeLockedAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken)
    {
        if (_snapshots.Count > 0 && _header.Version < 3)
        {
            throw new NotSupportedException("Can't resize a v2 image which has snapshots");
        }

        CheckBitmapsForResize();

        long oldLength = Length;
        long newL1Size = (long)_header.L1EntriesFor((ulong)length);
        int clusterSize = _header.ClusterSize;
        if (length < oldLength)
        {
            if (preallocation != PreallocationMode.Off)
            {
                throw new NotSupportedException("Preallocation can't be used for shrinking an image");
            }

            long from = RoundUp(length, clusterSize);
            if (oldLength > from)
            {
                await _map.DiscardClustersAsync(from, oldLength - from, Qcow2DiscardType.Always, true, cancellationToken).ConfigureAwait(false);
            }

            await _map.ShrinkL1TableAsync(newL1Size, cancellationToken).ConfigureAwait(false);
            await _refcounts.ShrinkTableAsync(cancellationToken).ConfigureAwait(false);

            // The freed tail is cut off the file only once the tables that dropped it are durable.
            await _refcounts.MakeFreedClustersReusableAsync(cancellationToken).ConfigureAwait(false);
            long fileLength = File.Length;
            long lastCluster = await _refcounts.GetLastUsedClusterAsync(fileLength, cancellationToken).ConfigureAwait(false);
            if ((lastCluster + 1) * clusterSize < fileLength)
            {
                try
                {
                    await File.TruncateAsync((lastCluster + 1) * clusterSize, PreallocationMode.Off, false, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    _warning?.Invoke("Failed to truncate the tail of the image: " + e.Message);
                }
            }
        }
        else
        {
            try
            {
                await _map.GrowL1TableAsync(newL1Size, true, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e) when (!Qcow2ThrowHelper.IsCorruption(e))
            {
                // Still an I/O error with its errno: image creation turns EFBIG into its "image size is too large" message.
                throw new Protocols.File.FileIOException("Failed to grow the L1 table: " + Diagnostics.ErrorText.Describe(e), e.HResult);
            }
            if (_header.IsDataFileRaw && preallocation == PreallocationMode.Off)
            {
                // The raw data file must map 1:1, so the metadata of the new area is always preallocated.
                preallocation = PreallocationMode.Metadata;
            }
        }

        switch (preallocation)
        {
            case PreallocationMode.Off:
                if (HasExternalDataFile)
                {
                    await _dataFile.TruncateAsync(length, PreallocationMode.Off, exact, cancellationToken).ConfigureAwait(false);
                }

                break;
            case PreallocationMode.Metadata:
                await PreallocateAsync(oldLength, length, preallocation, cancellationToken).ConfigureAwait(false);
                break;
            default:
                if (HasExternalDataFile)
                {
                    await PreallocateAsync(oldLength, length, preallocation, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await PreallocateDataAsync(oldLength, length, preallocation, cancellationToken).ConfigureAwait(false);
                }

                break;
        }

        if (length > oldLength && Backing is BlockNode backing && backing.Length > oldLength)
        {
            await ZeroNewAreaAsync(oldLength, length, cancellationToken).ConfigureAwait(false);
        }

        if (preallocation != PreallocationMode.Off)
        {
            await WriteCachesAsync(cancellationToken).ConfigureAwait(false);
        }

        await WriteHeaderFieldAsync(Qcow2Layout.SizeOffset, (ulong)length, cancellationToken).ConfigureAwait(false);
        _header.Size = (ulong)length;
        Volatile.Write(ref _length, length);
        TruncateBitmaps(length);
    }

    /// <summary>
    /// Makes the grown area read as zeroes although the backing file has data there (QEMU's block layer asks qcow2 for
    /// BDRV_REQ_ZERO_WRITE in that case): zero clusters from the first subcluster boundary on, explicit zeroes for the
    /// unaligned head. Without it the backing file's data past the old end would show through.
    /// </summary>
    /// <exception cref="Operations.OperationException">A version 2 image cannot store zero clusters over a backing file.</exception>
    private async ValueTask ZeroNewAreaAsync(long oldLength, long length, CancellationToken cancellationToken)
    {
        long subcluster = _map.SubclusterSize;
        long zeroStart = RoundUp(oldLength, subcluster);
        if (length > zeroStart && !await _map.ZeroizeAsync(zeroStart, length - zeroStart, false, length, cancellationToken).ConfigureAwait(false))
        {
            throw new Operations.OperationException("Failed to zero out new clusters: Operation not supported");
        }

        if (zeroStart > oldLength)
        {
            // Written below the block layer (the image still has its old size), as QEMU's qcow2_co_pwritev_part; the write
            // takes the metadata lock itself.
            byte[] zeroes = new byte[Math.Min(zeroStart, length) - oldLength];
            _lock.Release();
            try
            {
                await WriteCoreAsync(oldLength, zeroes, WriteFlags.None, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                await _lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Allocates metadata (L2 tables, refcounts) and host clusters for the guest range, without writing data
    /// (QEMU's preallocate_co), then makes the data file long enough to hold the last cluster.
    /// </summary>
    private async ValueTask PreallocateAsync(long from, long to, PreallocationMode mode, CancellationToken cancellationToken)
    {
        long hostOffset = 0;
        long bytes = 0;
        long clusterSize = _header.ClusterSize;
        while (from < to)
        {
            long request = Math.Min(to - from, int.MaxValue / clusterSize * clusterSize);
            List<Qcow2Allocation> allocations;
            (hostOffset, bytes, allocations) = await _map.AllocateHostOffsetAsync(from, request, cancellationToken).ConfigureAwait(false);
            for (int i = 0; i < allocations.Count; i++)
            {
                allocations[i].Prealloc = true;
                try
                {
                    // As QEMU's qcow2_alloc_cluster_link_l2: a partly covered last cluster gets its copy-on-write
                    // tail (zeroes, or the backing file's data) written before it is linked. The read goes through
                    // this image, so the resize lock is let go meanwhile, as for data preallocation.
                    if (allocations[i].CowStart.Bytes != 0 || allocations[i].CowEnd.Bytes != 0)
                    {
                        _lock.Release();
                        try
                        {
                            await PerformCowAsync(allocations[i], false, default, cancellationToken).ConfigureAwait(false);
                        }
                        finally
                        {
                            await _lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                        }
                    }

                    await _map.LinkAllocationAsync(allocations[i], cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    await _map.AbortAllocationsAsync(allocations.GetRange(i + 1, allocations.Count - i - 1), CancellationToken.None).ConfigureAwait(false);
                    throw;
                }
            }

            from += bytes;
        }

        // The file must hold every allocated cluster, or reads past its end would fail.
        long fileLength = _dataFile.Length;
        if (hostOffset + bytes > fileLength)
        {
            await _dataFile.TruncateAsync(hostOffset + bytes, mode == PreallocationMode.Metadata ? PreallocationMode.Off : mode, false, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// falloc/full preallocation without a data file (QEMU's qcow2_co_truncate): new refcount structures go after the
    /// last used cluster, sized to cover the new data clusters and their L2 tables; the data clusters follow them in one
    /// run, the file is extended over them with the requested mode, and the L2 entries are then pointed at them.
    /// </summary>
    private async ValueTask PreallocateDataAsync(long oldLength, long length, PreallocationMode mode, CancellationToken cancellationToken)
    {
        int clusterSize = _header.ClusterSize;
        int clusterBits = _header.ClusterBits;
        // The new structures go right after the last used cluster: clusters freed past it must be reusable first.
        await _refcounts.MakeFreedClustersReusableAsync(cancellationToken).ConfigureAwait(false);
        long oldFileSize = File.Length;
        long lastCluster = await _refcounts.GetLastUsedClusterAsync(oldFileSize, cancellationToken).ConfigureAwait(false);
        oldFileSize = (lastCluster + 1) * clusterSize;

        long newDataClusters = (RoundUp(length, clusterSize) - (oldLength & ~(long)(clusterSize - 1))) >> clusterBits;
        long entriesPerL2 = clusterSize / _header.L2EntrySize;
        long newL2Tables = (newDataClusters + entriesPerL2 - 1) / entriesPerL2 + 1;
        long allocationStart = await _refcounts.CreateRefcountAreaAsync(oldFileSize, newDataClusters + newL2Tables, true, 0, 0, cancellationToken).ConfigureAwait(false);
        long allocated = await _refcounts.AllocateClustersAtAsync(allocationStart, newDataClusters, cancellationToken).ConfigureAwait(false);
        if (allocated != newDataClusters)
        {
            Qcow2ThrowHelper.Corruption("Preallocated data clusters are already in use");
        }

        long newFileSize = allocationStart + newDataClusters * clusterSize;
        try
        {
            await File.TruncateAsync(newFileSize, mode, false, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await _refcounts.FreeClustersAsync(allocationStart, newDataClusters * clusterSize, Qcow2DiscardType.Other, cancellationToken).ConfigureAwait(false);
            throw;
        }

        long hostOffset = allocationStart;
        long guestOffset = oldLength;
        while (newDataClusters > 0)
        {
            long count = Math.Min(newDataClusters, _map.L2Size - _map.L2Index(guestOffset));
            int cowStart = (int)(guestOffset & (clusterSize - 1));
            guestOffset &= ~(long)(clusterSize - 1);
            var allocation = new Qcow2Allocation
            {
                GuestOffset = guestOffset,
                HostOffset = hostOffset,
                ClusterCount = (int)count,
                KeepOldClusters = false,
                CowStart = (0, cowStart),
                CowEnd = ((int)(count << clusterBits), 0),
                Prealloc = true,
            };

            if (cowStart != 0)
            {
                // The old last cluster's head moves into the new cluster.
                _lock.Release();
                try
                {
                    await PerformCowAsync(allocation, false, default, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    await _lock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                }

                _map.L2Cache.DependOnFlush();
            }

            await _map.LinkAllocationAsync(allocation, cancellationToken).ConfigureAwait(false);
            guestOffset += count * clusterSize;
            hostOffset += count * clusterSize;
            newDataClusters -= count;
        }
    }

    private static long RoundUp(long value, long align) => (value + align - 1) / align * align;
}
