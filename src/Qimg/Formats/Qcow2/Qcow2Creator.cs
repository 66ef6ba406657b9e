using System.Buffers.Binary;
using Qimg.Block;
using Qimg.Protocols;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// Lays out a new image exactly as QEMU's qcow2_co_create does, so that the files are byte-identical: header at cluster
/// 0, refcount table at cluster 1, its first refcount block at cluster 2, then everything the normal allocator places
/// while the image grows to its size.
/// </summary>
internal static class Qcow2Creator
{
    public static async ValueTask CreateAsync(ImageCreateRequest request, Qcow2CreateOptions options, ProtocolDriver? dataProtocol, CancellationToken cancellationToken)
    {
        int clusterSize = options.ClusterSize;
        int clusterBits = System.Numerics.BitOperations.Log2((uint)clusterSize);
        var openOptions = new ProtocolOpenOptions(false, CacheMode.Writeback);
        BlockNode file = await request.Protocol.OpenAsync(request.FileName, openOptions, cancellationToken).ConfigureAwait(false);
        BlockNode? dataFile = null;
        Qcow2Image? image = null;
        try
        {
            if (options.DataFile is not null)
            {
                dataFile = await dataProtocol!.OpenAsync(options.DataFile, openOptions, cancellationToken).ConfigureAwait(false);
            }

            // A minimal image: no L1 table and an empty refcount block; it is made consistent right after opening.
            var header = new Qcow2Header
            {
                Version = options.Version,
                ClusterBits = clusterBits,
                RefcountTableOffset = (ulong)clusterSize,
                RefcountTableClusters = 1,
                RefcountOrder = System.Numerics.BitOperations.Log2((uint)options.RefcountBits),
                CompressionType = options.CompressionType == "zstd" ? Qcow2Layout.CompressionZstd : Qcow2Layout.CompressionZlib,
            };
            if (options.LazyRefcounts)
            {
                header.CompatibleFeatures |= Qcow2Layout.CompatLazyRefcounts;
            }

            if (dataFile is not null)
            {
                header.IncompatibleFeatures |= Qcow2Layout.IncompatDataFile;
            }

            if (options.DataFileRaw)
            {
                header.AutoclearFeatures |= Qcow2Layout.AutoclearDataFileRaw;
            }

            if (header.CompressionType != Qcow2Layout.CompressionZlib)
            {
                header.IncompatibleFeatures |= Qcow2Layout.IncompatCompression;
            }

            if (options.ExtendedL2)
            {
                header.IncompatibleFeatures |= Qcow2Layout.IncompatExtendedL2;
            }

            byte[] first = new byte[clusterSize];
            WriteMinimalHeader(header, first);
            try
            {
                await file.WriteAsync(0, first, WriteFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                // /dev/full as the target: "Could not write qcow2 header: No space left on device", as QEMU says.
                throw Qcow2Image.CreateStepFailed("Could not write qcow2 header: ", e);
            }

            byte[] table = new byte[2 * clusterSize];
            BinaryPrimitives.WriteUInt64BigEndian(table, 2UL * (ulong)clusterSize);
            try
            {
                await file.WriteAsync(clusterSize, table, WriteFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw Qcow2Image.CreateStepFailed("Could not write refcount table: ", e);
            }

            image = await Qcow2Image.OpenAsync(
                file,
                new Qcow2OpenParameters(false, request.Warning, null, dataFile),
                cancellationToken).ConfigureAwait(false);
            dataFile = null;
            await image.InitializeNewAsync(options, cancellationToken).ConfigureAwait(false);
            await image.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (image is not null)
            {
                await image.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                if (dataFile is not null)
                {
                    await dataFile.DisposeAsync().ConfigureAwait(false);
                }

                await file.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The header QEMU writes first: 112 bytes, no extensions, size 0.</summary>
    private static void WriteMinimalHeader(Qcow2Header header, Span<byte> cluster)
    {
        BinaryPrimitives.WriteUInt32BigEndian(cluster, Qcow2Layout.Magic);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[Qcow2Layout.VersionOffset..], (uint)header.Version);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[Qcow2Layout.ClusterBitsOffset..], (uint)header.ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[Qcow2Layout.RefcountTableOffsetOffset..], header.RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[Qcow2Layout.RefcountTableClustersOffset..], header.RefcountTableClusters);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[Qcow2Layout.IncompatibleFeaturesOffset..], header.IncompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[Qcow2Layout.CompatibleFeaturesOffset..], header.CompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(cluster[Qcow2Layout.AutoclearFeaturesOffset..], header.AutoclearFeatures);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[Qcow2Layout.RefcountOrderOffset..], (uint)header.RefcountOrder);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[Qcow2Layout.HeaderLengthOffset..], Qcow2Layout.V3HeaderLength);
        cluster[Qcow2Layout.CompressionTypeOffset] = header.CompressionType;
    }
}
