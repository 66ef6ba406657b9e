using System.Numerics;
using Qimg.Block;
using Qimg.Options;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// QEMU's qcow2_measure: the options are read the way measure reads them (its own checks and messages, not the create
/// visitor's: compat is "0.10" or "1.1" only), the metadata of a fully allocated image is counted as
/// qcow2_calc_prealloc_size counts it, and the data clusters a copy of the source would write are found through the
/// block status of its whole chain.
/// </summary>
internal static class Qcow2Measure
{
    public static async ValueTask<ImageMeasurement> MeasureAsync(OptionValues options, FormatNode? source, SecretStore? secrets, CancellationToken cancellationToken)
    {
        bool extendedL2 = options.GetBool("extended_l2", false);
        ulong clusterSizeOption = options.GetSize("cluster_size", Qcow2Layout.DefaultClusterSize);
        Qcow2CreateOptions.ValidateClusterSize(clusterSizeOption, extendedL2);
        long clusterSize = (long)clusterSizeOption;

        int version = options.GetString("compat") switch
        {
            null or "1.1" => 3,
            "0.10" => 2,
            string other => throw new OptionException($"Invalid compatibility level: '{other}'"),
        };

        ulong refcountBits = options.GetNumber("refcount_bits", 16);
        if (refcountBits > 64 || !BitOperations.IsPow2(refcountBits))
        {
            throw new OptionException("Refcount width must be a power of two and may not exceed 64 bits");
        }

        if (version < 3 && refcountBits != 16)
        {
            throw new OptionException("Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
        }

        PreallocationMode preallocation = PreallocationMode.Off;
        if (options.GetString("preallocation") is string mode && !PreallocationModeNames.TryParse(mode, out preallocation))
        {
            throw new OptionException($"invalid parameter value: {mode}");
        }

        bool hasBackingFile = options.GetString("backing_file") is not null;
        long luksPayloadSize = 0;
        if (options.GetString("encrypt.format") == "luks")
        {
            if (options.GetString("encrypt.key-secret") is not string secret)
            {
                throw new OptionException("Parameter 'encrypt.key-secret' is required for cipher");
            }

            if (secrets is null || !secrets.TryGet(secret, out _))
            {
                throw new OptionException($"No secret with id '{secret}'");
            }

            luksPayloadSize = RoundUp(LuksPayloadOffset(options), clusterSize);
        }

        // Checked in unsigned arithmetic as QEMU checks it; a size that passes fits a long.
        ulong sizeOption = unchecked((options.GetSize("size", 0) + (ulong)clusterSize - 1) / (ulong)clusterSize * (ulong)clusterSize);
        long l2EntrySize = extendedL2 ? 16 : 8;
        ulong l2Tables = ((sizeOption / (ulong)clusterSize) + (ulong)(clusterSize / l2EntrySize) - 1) / (ulong)(clusterSize / l2EntrySize);
        if (l2Tables * Qcow2Layout.L1EntrySize > Qcow2Layout.MaxL1TableBytes)
        {
            throw new OptionException("The image size is too large (try using a larger cluster size)");
        }

        long virtualSize = (long)sizeOption;

        long required = 0;
        if (source is not null)
        {
            long sourceSize = source.Length;
            virtualSize = RoundUp(sourceSize, clusterSize);
            if (hasBackingFile)
            {
                // The new image's backing file may share nothing with the source: every cluster may need writing.
                required = virtualSize;
            }
            else
            {
                required = await CountDataAsync(source, sourceSize, clusterSize, cancellationToken).ConfigureAwait(false);
            }
        }

        if (preallocation is PreallocationMode.Full or PreallocationMode.Falloc)
        {
            required = virtualSize;
        }

        long fullyAllocated = luksPayloadSize + PreallocatedSize(virtualSize, clusterSize, BitOperations.TrailingZeroCount(refcountBits), l2EntrySize);
        long? bitmaps = null;
        if (version >= 3 && source is IPersistentBitmapHost { SupportsPersistentBitmaps: true } host)
        {
            bitmaps = Qcow2Bitmaps.MeasureSize(host.DirtyBitmaps, (int)clusterSize);
        }

        // The metadata of the fully allocated image is kept: an overestimate, as in QEMU.
        return new ImageMeasurement((ulong)(fullyAllocated - virtualSize + required), (ulong)fullyAllocated, (ulong?)bitmaps);
    }

    /// <summary>
    /// The bytes of data clusters a copy of <paramref name="source"/> allocates, counted as QEMU counts them: zero ranges
    /// are skipped, allocated data is extended to the end of its cluster and counted from the start of its first one.
    /// </summary>
    private static async ValueTask<long> CountDataAsync(FormatNode source, long size, long clusterSize, CancellationToken cancellationToken)
    {
        long required = 0;
        long length;
        for (long offset = 0; offset < size; offset += length)
        {
            ChainBlockStatus chain = await BackingChain.GetBlockStatusAboveAsync(source, null, false, offset, size - offset, wantZero: true, cancellationToken).ConfigureAwait(false);
            BlockStatus status = chain.Status;
            length = status.Length;
            if (length <= 0)
            {
                throw new IOException("Unable to get block status: Input/output error");
            }

            if (status.IsZero)
            {
                continue;
            }

            if (status.IsData && status.IsAllocated)
            {
                length = RoundUp(offset + length, clusterSize) - offset;
                required += (offset % clusterSize) + length;
            }
        }

        return required;
    }

    /// <summary>
    /// The bytes of a new LUKS header with its eight key slots (QEMU's qcrypto_block_calculate_payload_offset): each
    /// slot's key material (master key length times 4000 stripes, in sectors, aligned to the 4 KiB header) after the
    /// header. Only the AES ciphers in XTS or CBC mode are worked out here; qimg cannot create encrypted images.
    /// </summary>
    private static long LuksPayloadOffset(OptionValues options)
    {
        int? keyBytes = (options.GetString("encrypt.cipher-alg") ?? "aes-256") switch
        {
            "aes-128" => 16,
            "aes-192" => 24,
            "aes-256" => 32,
            _ => null,
        };
        string mode = options.GetString("encrypt.cipher-mode") ?? "xts";
        if (keyBytes is null || mode is not ("xts" or "cbc"))
        {
            throw new OptionException("Measuring images encrypted with this cipher is not supported by qimg");
        }

        const long SectorSize = 512;
        const long HeaderSectors = 4096 / SectorSize;
        long masterKeyBytes = keyBytes.Value * (mode == "xts" ? 2 : 1);
        long splitKeySectors = RoundUp((masterKeyBytes * 4000 + SectorSize - 1) / SectorSize, HeaderSectors);
        return (HeaderSectors + (8 * splitKeySectors)) * SectorSize;
    }

    /// <summary>QEMU's qcow2_calc_prealloc_size: header, L2 and L1 tables, refcount structures and every data cluster.</summary>
    private static long PreallocatedSize(long totalSize, long clusterSize, int refcountOrder, long l2EntrySize)
    {
        long alignedTotal = RoundUp(totalSize, clusterSize);
        long metaSize = clusterSize;
        long l2Entries = RoundUp(alignedTotal / clusterSize, clusterSize / l2EntrySize);
        metaSize += l2Entries * l2EntrySize;
        long l1Entries = RoundUp(l2Entries * l2EntrySize / clusterSize, clusterSize / Qcow2Layout.L1EntrySize);
        metaSize += l1Entries * Qcow2Layout.L1EntrySize;
        metaSize += Qcow2RefcountBlock.MetadataSize((metaSize + alignedTotal) / clusterSize, (int)clusterSize, refcountOrder, false, out _);
        return metaSize + alignedTotal;
    }

    private static long RoundUp(long value, long align) => (value + align - 1) / align * align;
}
