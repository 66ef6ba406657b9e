using System.Buffers.Binary;

namespace Qimg.Formats.Qcow2;

internal sealed partial class Qcow2Check
{
    /// <summary>
    /// Builds a new refcount structure from the counts alone (QEMU's rebuild_refcount_structure): every refcount block
    /// that has a counted cluster is placed in a free cluster (at or after the clusters it describes) and written as the
    /// matching slice of the counts, then the new refcount table is placed in free clusters; since placing it changes the
    /// counts, the blocks covering it are written again, and if the table had to grow the placement repeats. The new
    /// table is written and made durable, then the header switches to it in one write. The old structure is left behind
    /// as leaked clusters, which the comparison that follows frees.
    /// </summary>
    private async ValueTask RebuildRefcountStructureAsync(CheckResult res, Qcow2RefcountArray counts, CancellationToken cancellationToken)
    {
        // Nothing cached may be written over the new structure later.
        await _refcounts.BlockCache.EmptyAsync(cancellationToken).ConfigureAwait(false);

        var table = new RebuiltTable();
        try
        {
            bool grown = await WriteRebuiltBlocksAsync(counts, 0, counts.Size, table, cancellationToken).ConfigureAwait(false);
            long tableOffset;
            long tableClusters;
            do
            {
                tableClusters = SizeToClusters((long)table.Entries * Qcow2Layout.RefcountTableEntrySize);
                long firstFree = 0;
                tableOffset = AllocateInCounts(counts, tableClusters, ref firstFree);

                // Placing the table changed the counts of its clusters: write their blocks again.
                long start = tableOffset >> _clusterBits;
                grown = await WriteRebuiltBlocksAsync(counts, start, start + tableClusters, table, cancellationToken).ConfigureAwait(false);
            }
            while (grown);

            byte[] raw = new byte[(long)table.Entries * Qcow2Layout.RefcountTableEntrySize];
            for (int i = 0; i < table.Entries; i++)
            {
                BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * Qcow2Layout.RefcountTableEntrySize), table.Offsets[i]);
            }

            if (await _image.CheckOverlapForCheckAsync(tableOffset, raw.Length, Qcow2CheckOverlap.None, _report).ConfigureAwait(false))
            {
                throw new RebuildException("ERROR writing reftable", Qcow2ThrowHelper.EIO);
            }

            try
            {
                await _image.WriteMetadataAsync(tableOffset, raw, cancellationToken).ConfigureAwait(false);

                // qimg makes the blocks and the table durable before the header points to them (QEMU only syncs the
                // header write).
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new RebuildException("ERROR writing reftable", e);
            }

            byte[] pointer = new byte[12];
            BinaryPrimitives.WriteUInt64BigEndian(pointer, (ulong)tableOffset);
            BinaryPrimitives.WriteUInt32BigEndian(pointer.AsSpan(8), (uint)tableClusters);
            try
            {
                await _image.WriteMetadataSyncAsync(Qcow2Layout.RefcountTableOffsetOffset, pointer, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new RebuildException("ERROR setting reftable", e);
            }

            ulong[] entries = new ulong[table.Entries];
            Array.Copy(table.Offsets, entries, table.Entries);
            _refcounts.ReplaceTable(entries, tableOffset, (uint)tableClusters);
        }
        catch (RebuildException e)
        {
            // QEMU reports these with error_report ("qemu-img: ERROR writing refblock: …").
            if (e.CountsAsCheckError)
            {
                res.CheckErrors++;
            }

            ReportError($"{e.Message}: {Strerror(e.Errno)}");
            throw e.Errno;
        }
    }

    /// <summary>
    /// Writes the refcount blocks for the counted clusters in [<paramref name="first"/>, <paramref name="end"/>) (QEMU's
    /// rebuild_refcounts_write_refblocks): a block is placed (in the counts) when the new table has none for it yet, and
    /// written as its slice of the counts; placing a block past <paramref name="end"/> extends the range to it.
    /// </summary>
    /// <returns>True when the new refcount table had to grow.</returns>
    private async ValueTask<bool> WriteRebuiltBlocksAsync(Qcow2RefcountArray counts, long first, long end, RebuiltTable table, CancellationToken cancellationToken)
    {
        long firstFree = 0;
        bool grown = false;
        long blockEntries = counts.BlockEntries;
        for (long cluster = first; cluster < end; cluster++)
        {
            long blockIndex = cluster >> counts.BlockBits;
            if (counts.Block(blockIndex) is null)
            {
                // No counted cluster in this whole block.
                cluster = ((blockIndex + 1) << counts.BlockBits) - 1;
                continue;
            }

            if (counts.Get(cluster) == 0)
            {
                continue;
            }

            long blockStart = blockIndex << counts.BlockBits;
            long blockOffset;
            if (table.Entries > blockIndex && table.Offsets[blockIndex] != 0)
            {
                // Placed in an earlier round.
                blockOffset = (long)table.Offsets[blockIndex];
            }
            else
            {
                // Never in a block that is already written.
                if (firstFree < blockStart)
                {
                    firstFree = blockStart;
                }

                blockOffset = AllocateInCounts(counts, 1, ref firstFree);
                long blockCluster = blockOffset >> _clusterBits;
                if (blockCluster >= end)
                {
                    // The block holding this block's own refcount must be written too.
                    end = blockCluster + 1;
                }

                if (table.Entries <= blockIndex)
                {
                    long entriesPerCluster = _clusterSize / Qcow2Layout.RefcountTableEntrySize;
                    long entries = (blockIndex + 1 + entriesPerCluster - 1) / entriesPerCluster * entriesPerCluster;
                    if (entries > int.MaxValue / Qcow2Layout.RefcountTableEntrySize)
                    {
                        throw new RebuildException("ERROR allocating reftable memory", Qcow2ThrowHelper.ENOMEM, countsAsCheckError: true);
                    }

                    table.Grow((int)entries);
                    grown = true;
                }

                table.Offsets[blockIndex] = (ulong)blockOffset;
            }

            if (await _image.CheckOverlapForCheckAsync(blockOffset, _clusterSize, Qcow2CheckOverlap.None, _report).ConfigureAwait(false))
            {
                throw new RebuildException("ERROR writing refblock", Qcow2ThrowHelper.EIO, countsAsCheckError: true);
            }

            // The block is exactly its slice of the counts.
            byte[] block = counts.Block(blockIndex) ?? new byte[_clusterSize];
            try
            {
                await _image.WriteMetadataAsync(blockOffset, block, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new RebuildException("ERROR writing refblock", e, countsAsCheckError: true);
            }

            cluster = blockStart + blockEntries - 1;
        }

        return grown;
    }

    /// <summary>
    /// Takes <paramref name="count"/> contiguous clusters that are free in the counts, first fit from
    /// <paramref name="firstFree"/> (QEMU's alloc_clusters_imrt), appending them past the end when no gap is large enough.
    /// <paramref name="firstFree"/> moves to the first free cluster seen.
    /// </summary>
    /// <returns>The offset of the first cluster.</returns>
    private long AllocateInCounts(Qcow2RefcountArray counts, long count, ref long firstFree)
    {
        long cluster = firstFree;
        long contiguous = 0;
        bool firstGap = true;
        for (; cluster < counts.Size && contiguous < count; cluster++)
        {
            if (counts.Get(cluster) == 0)
            {
                contiguous++;
                if (firstGap)
                {
                    firstFree = cluster;
                    firstGap = false;
                }
            }
            else
            {
                contiguous = 0;
            }
        }

        if (contiguous < count)
        {
            counts.Resize(cluster + count - contiguous);
        }

        cluster -= contiguous;
        for (long i = 0; i < count; i++)
        {
            counts.Set(cluster + i, 1);
        }

        return cluster << _clusterBits;
    }

    /// <summary>The refcount table being built: block offsets by block index.</summary>
    private sealed class RebuiltTable
    {
        public ulong[] Offsets { get; private set; } = [];

        public int Entries { get; private set; }

        public void Grow(int entries)
        {
            ulong[] grown = new ulong[entries];
            Array.Copy(Offsets, grown, Entries);
            Offsets = grown;
            Entries = entries;
        }
    }

    /// <summary>A failed step of the rebuild, with QEMU's message prefix and the errno.</summary>
    private sealed class RebuildException : Exception
    {
        public RebuildException(string message, int errno, bool countsAsCheckError = false)
            : base(message)
        {
            Errno = Qcow2ThrowHelper.Errno(errno);
            CountsAsCheckError = countsAsCheckError;
        }

        public RebuildException(string message, IOException cause, bool countsAsCheckError = false)
            : base(message, cause)
        {
            Errno = AsErrno(cause);
            CountsAsCheckError = countsAsCheckError;
        }

        public IOException Errno { get; }

        public bool CountsAsCheckError { get; }
    }
}
