using Qimg.Block;
using Qimg.Options;

namespace Qimg.Formats.Qcow2;

/// <summary>
/// The qcow2 creation options (QEMU's BlockdevCreateOptionsQcow2), bound from <c>-o</c> values with QEMU's defaults,
/// value checks and messages.
/// </summary>
public sealed record Qcow2CreateOptions
{
    /// <summary>The options QEMU 7.2 lists for qcow2 (qcow2_create_opts), in its order, with its help texts and defaults.</summary>
    public static IReadOnlyList<OptionDescriptor> Descriptors { get; } =
    [
        new("encryption", OptionType.Bool, "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)"),
        new("encrypt.format", OptionType.String, "Encrypt the image, format choices: 'aes', 'luks'"),
        new("encrypt.key-secret", OptionType.String, "ID of secret providing qcow AES key or LUKS passphrase"),
        new("encrypt.cipher-alg", OptionType.String, "Name of encryption cipher algorithm"),
        new("encrypt.cipher-mode", OptionType.String, "Name of encryption cipher mode"),
        new("encrypt.ivgen-alg", OptionType.String, "Name of IV generator algorithm"),
        new("encrypt.ivgen-hash-alg", OptionType.String, "Name of IV generator hash algorithm"),
        new("encrypt.hash-alg", OptionType.String, "Name of encryption hash algorithm"),
        new("encrypt.iter-time", OptionType.Number, "Time to spend in PBKDF in milliseconds"),
        new("cluster_size", OptionType.Size, "qcow2 cluster size", "65536"),
        new("extended_l2", OptionType.Bool, "Extended L2 tables", "off"),
        new("preallocation", OptionType.String, "Preallocation mode (allowed values: off, metadata, falloc, full)"),
        new("compression_type", OptionType.String, "Compression method used for image cluster compression", "zlib"),
        new("size", OptionType.Size, "Virtual disk size"),
        new("compat", OptionType.String, "Compatibility level (v2 [0.10] or v3 [1.1])"),
        new("backing_file", OptionType.String, "File name of a base image"),
        new("backing_fmt", OptionType.String, "Image format of the base image"),
        new("data_file", OptionType.String, "File name of an external data file"),
        new("data_file_raw", OptionType.Bool, "The external data file must stay valid as a raw image"),
        new("lazy_refcounts", OptionType.Bool, "Postpone refcount updates", "off"),
        new("refcount_bits", OptionType.Number, "Width of a reference count entry in bits", "16"),
    ];

    /// <summary>QEMU 7.2's BlockdevDriver names: the values backing-fmt accepts.</summary>
    private static readonly HashSet<string> s_blockdevDrivers =
    [
        "blkdebug", "blklogwrites", "blkreplay", "blkverify", "bochs", "cloop", "compress", "copy-before-write",
        "copy-on-read", "dmg", "file", "snapshot-access", "ftp", "ftps", "gluster", "host_cdrom", "host_device", "http",
        "https", "io_uring", "iscsi", "luks", "nbd", "nfs", "null-aio", "null-co", "nvme", "nvme-io_uring", "parallels",
        "preallocate", "qcow", "qcow2", "qed", "quorum", "raw", "rbd", "replication", "ssh", "throttle", "vdi", "vhdx",
        "virtio-blk-vfio-pci", "virtio-blk-vhost-user", "virtio-blk-vhost-vdpa", "vmdk", "vpc", "vvfat",
    ];

    /// <summary>The virtual size in bytes (rounded up to 512).</summary>
    public long Size { get; init; }

    /// <summary>2 (compat=0.10) or 3 (compat=1.1, the default).</summary>
    public int Version { get; init; } = 3;

    public int ClusterSize { get; init; } = Qcow2Layout.DefaultClusterSize;

    public bool ExtendedL2 { get; init; }

    public PreallocationMode Preallocation { get; init; } = PreallocationMode.Off;

    /// <summary>"zlib" (default) or "zstd".</summary>
    public string CompressionType { get; init; } = "zlib";

    public string? BackingFile { get; init; }

    public string? BackingFormat { get; init; }

    public string? DataFile { get; init; }

    public bool DataFileRaw { get; init; }

    public bool LazyRefcounts { get; init; }

    public int RefcountBits { get; init; } = 16;

    /// <summary>Encryption was asked for (qimg refuses to create encrypted images).</summary>
    public bool Encrypt { get; init; }

    /// <summary>
    /// Binds and checks the options in the order QEMU does (the QAPI visitor's value checks in schema order, then
    /// qcow2_co_create's combination checks), with QEMU's messages.
    /// </summary>
    /// <exception cref="OptionException">An option value or combination is invalid.</exception>
    public static Qcow2CreateOptions Bind(OptionValues options, long size)
    {
        // The visitor's value checks, in BlockdevCreateOptionsQcow2 field order.
        bool dataFileRaw = options.GetBool("data_file_raw", false);
        bool extendedL2 = options.GetBool("extended_l2", false);
        int version = 3;
        if (options.GetString("compat") is string compat)
        {
            version = compat switch
            {
                "0.10" or "v2" => 2,
                "1.1" or "v3" => 3,
                _ => throw new OptionException($"Parameter 'version' does not accept value '{compat}'"),
            };
        }

        string? backingFile = options.GetString("backing_file");
        string? backingFormat = options.GetString("backing_fmt");
        if (backingFormat is not null && !s_blockdevDrivers.Contains(backingFormat))
        {
            throw new OptionException($"Parameter 'backing-fmt' does not accept value '{backingFormat}'");
        }

        bool encrypt = BindEncryption(options);
        ulong clusterSize = options.GetSize("cluster_size", Qcow2Layout.DefaultClusterSize);
        PreallocationMode preallocation = PreallocationMode.Off;
        if (options.GetString("preallocation") is string mode && !PreallocationModeNames.TryParse(mode, out preallocation))
        {
            throw new OptionException($"Parameter 'preallocation' does not accept value '{mode}'");
        }

        bool lazyRefcounts = options.GetBool("lazy_refcounts", false);
        ulong refcountBits = options.GetNumber("refcount_bits", 16);
        string compressionType = options.GetString("compression_type") ?? "zlib";
        if (compressionType is not ("zlib" or "zstd"))
        {
            throw new OptionException($"Parameter 'compression-type' does not accept value '{compressionType}'");
        }

        // qcow2_co_create's checks, in its order.
        if (extendedL2 && version < 3)
        {
            throw new OptionException("Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)");
        }

        ValidateClusterSize(clusterSize, extendedL2);
        if (backingFile is not null && preallocation != PreallocationMode.Off && !extendedL2)
        {
            throw new OptionException("Backing file and preallocation can only be used at the same time if extended_l2 is on");
        }

        if (backingFormat is not null && backingFile is null)
        {
            throw new OptionException("Backing format cannot be used without backing file");
        }

        if (version < 3 && lazyRefcounts)
        {
            throw new OptionException("Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)");
        }

        if (refcountBits > 64 || refcountBits == 0 || (refcountBits & (refcountBits - 1)) != 0)
        {
            throw new OptionException("Refcount width must be a power of two and may not exceed 64 bits");
        }

        if (version < 3 && refcountBits != 16)
        {
            throw new OptionException("Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)");
        }

        string? dataFile = options.GetString("data_file");
        if (dataFileRaw && dataFile is null)
        {
            throw new OptionException("data-file-raw requires data-file");
        }

        if (dataFileRaw && backingFile is not null)
        {
            throw new OptionException("Backing file and data-file-raw cannot be used at the same time");
        }

        if (dataFileRaw && preallocation == PreallocationMode.Off)
        {
            // The raw data file must map 1:1 from the start.
            preallocation = PreallocationMode.Metadata;
        }

        if (dataFile is not null && version < 3)
        {
            throw new OptionException("External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)");
        }

        if (compressionType != "zlib" && version < 3)
        {
            throw new OptionException("Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)");
        }

        if (encrypt)
        {
            throw new OptionException("Creating encrypted qcow2 images is not supported by qimg");
        }

        return new Qcow2CreateOptions
        {
            Size = (size + 511) / 512 * 512,
            Version = version,
            ClusterSize = (int)clusterSize,
            ExtendedL2 = extendedL2,
            Preallocation = preallocation,
            CompressionType = compressionType,
            BackingFile = backingFile,
            BackingFormat = backingFormat,
            DataFile = dataFile,
            DataFileRaw = dataFileRaw,
            LazyRefcounts = lazyRefcounts,
            RefcountBits = (int)refcountBits,
            Encrypt = encrypt,
        };
    }

    /// <summary>QEMU's validate_cluster_size.</summary>
    internal static void ValidateClusterSize(ulong clusterSize, bool extendedL2)
    {
        int bits = System.Numerics.BitOperations.TrailingZeroCount((uint)clusterSize);
        if (bits < Qcow2Layout.MinClusterBits || bits > Qcow2Layout.MaxClusterBits || 1UL << bits != clusterSize)
        {
            throw new OptionException($"Cluster size must be a power of two between {1 << Qcow2Layout.MinClusterBits} and {1 << (Qcow2Layout.MaxClusterBits - 10)}k");
        }

        int minimum = (1 << Qcow2Layout.MinClusterBits) * Qcow2Layout.SubclustersPerCluster;
        if (extendedL2 && clusterSize < (ulong)minimum)
        {
            throw new OptionException($"Extended L2 entries are only supported with cluster sizes of at least {minimum} bytes");
        }
    }

    /// <summary>
    /// Whether encryption was asked for (encryption=on, or an encrypt.format). QEMU then needs a key secret; without one
    /// it fails with the visitor's message, which qimg reproduces.
    /// </summary>
    private static bool BindEncryption(OptionValues options)
    {
        bool legacy = options.GetBool("encryption", false);
        string? format = options.GetString("encrypt.format");
        if (!legacy && format is null)
        {
            return false;
        }

        if (format is not null && format is not ("aes" or "luks" or "qcow"))
        {
            throw new OptionException($"Parameter 'encrypt.format' does not accept value '{format}'");
        }

        if (options.GetString("encrypt.key-secret") is null)
        {
            throw new OptionException("Parameter 'encrypt.key-secret' is required for cipher");
        }

        return true;
    }
}
