using Microsoft.Win32.SafeHandles;
using Qimg.Block;
using Qimg.Buffers;
using Qimg.Diagnostics;
using Qimg.Interop;
using Qimg.Options;

namespace Qimg.Protocols.File;

/// <summary>
/// The "file" protocol: a local file (QEMU's file-posix "file" driver), or a block or character device when a plain
/// name (without "file:") names one (QEMU's "host_device", which QEMU picks the same way).
/// </summary>
public sealed class FileProtocol : ProtocolDriver
{
    private const string FilePrefix = "file:";
    private const string HostDevicePrefix = "host_device:";

    /// <summary>QEMU's default extent size hint for new files (1 MiB).</summary>
    private const ulong DefaultExtentSizeHint = 1 << 20;

    public static FileProtocol Instance { get; } = new();

    private FileProtocol()
    {
    }

    public override string Name => "file";

    /// <summary>file-posix's create options, in QEMU's order (<c>-o help</c> lists them so).</summary>
    public override IReadOnlyList<OptionDescriptor> CreateOptions { get; } =
    [
        new("size", OptionType.Size, "Virtual disk size"),
        new("nocow", OptionType.Bool, "Turn off copy-on-write (valid only on btrfs)"),
        new("preallocation", OptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
        new("extent_size_hint", OptionType.Size, "Extent size hint for the image file, 0 to disable"),
    ];

    /// <inheritdoc/>
    public override bool CanOpenBeneath => true;

    public override bool Handles(string fileName) =>
        fileName.StartsWith(FilePrefix, StringComparison.Ordinal) || fileName.StartsWith(HostDevicePrefix, StringComparison.Ordinal);

    /// <summary>Strips a "file:" (or "host_device:") prefix.</summary>
    public static string PathOf(string fileName)
    {
        if (fileName.StartsWith(FilePrefix, StringComparison.Ordinal))
        {
            return fileName[FilePrefix.Length..];
        }

        return fileName.StartsWith(HostDevicePrefix, StringComparison.Ordinal) ? fileName[HostDevicePrefix.Length..] : fileName;
    }

    /// <summary>
    /// Opens the file. No image locks are taken yet: the opener calls <see cref="BlockNode.SetPermissions"/> once it
    /// knows what the image's users need (as QEMU attaches permissions after opening).
    /// </summary>
    /// <exception cref="ImageOpenException">The file cannot be opened, is not a regular file (or device), or O_DIRECT
    /// cannot be used on it; the message is QEMU's ("Could not open 'x': No such file or directory").</exception>
    public override ValueTask<BlockNode> OpenAsync(string fileName, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
    {
        if (options.ForceShare && !options.ReadOnly)
        {
            throw new ImageOpenException("force-share=on can only be used with read-only images");
        }

        string path = PathOf(fileName);
        if (path.Length == 0)
        {
            string requested = fileName.StartsWith(HostDevicePrefix, StringComparison.Ordinal) ? "host_device" : "file";
            throw new ImageOpenException($"The '{requested}' block driver requires a file name");
        }

        int flags = (options.ReadOnly ? Libc.O_RDONLY : Libc.O_RDWR) | Libc.O_CLOEXEC;
        if (options.Cache.Direct)
        {
            flags |= Libc.O_DIRECT;
        }

        // Unconfined, decided by name before the open, as QEMU picks "host_device" (find_hdev_driver).
        bool device = options.Beneath is null && IsHostDevice(fileName, path);
        SafeFileHandle handle = options.Beneath is string directory ? OpenBeneath(directory, path, flags) : OpenDescriptor(path, flags, 0, "open");
        try
        {
            if (Libc.FStat(handle, out Libc.FileStatus status) is int statError and not 0)
            {
                throw new ImageOpenException($"Could not stat file: {Libc.StrError(statError)}");
            }

            if (options.Beneath is not null)
            {
                // Confined, decided by what was opened: the name looked up again could lead elsewhere by now.
                device = !fileName.StartsWith(FilePrefix, StringComparison.Ordinal)
                    && (fileName.StartsWith(HostDevicePrefix, StringComparison.Ordinal) || status.IsBlockDevice || status.IsCharDevice);
            }

            string driverName = device ? "host_device" : "file";

            if (!device && !status.IsRegular)
            {
                throw new ImageOpenException($"'{driverName}' driver requires '{path}' to be a regular file");
            }

            if (device && !(status.IsBlockDevice || status.IsCharDevice))
            {
                throw new ImageOpenException($"'{driverName}' driver requires '{path}' to be either a character or block device");
            }

            if (!options.ReadOnly && status.IsBlockDevice)
            {
                CheckDeviceWritable(handle);
            }

            if (Libc.LSeek(handle, 0, Libc.SeekEnd) < 0)
            {
                // procfs files, for example: QEMU cannot size them either.
                throw new ImageOpenException($"Could not refresh total sector count: {Libc.StrError(Libc.LastError)}");
            }

            BlockLimits limits = options.Cache.Direct ? ProbeAlignment(handle, status) : BlockLimits.Default;
            bool locking = options.Locking && Libc.HasOfdLocks(handle);
            return ValueTask.FromResult<BlockNode>(new FileNode(path, handle, options, status, limits, locking));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public override ValueTask CreateAsync(string fileName, long size, OptionValues options, CancellationToken cancellationToken = default) =>
        CreateAsync(fileName, size, options, null, cancellationToken);

    /// <summary>
    /// QEMU's <c>raw_co_create</c>: creates the file (mode 0644) or opens an existing one, takes QEMU's locks for
    /// write and resize (so that nobody else uses it meanwhile), empties it, sets nocow and the extent size hint
    /// (failures only warn), then grows it to <paramref name="size"/> rounded up to 512 with the requested
    /// preallocation. A device is not created but checked to be large enough, and its first sector is zeroed
    /// (QEMU's <c>bdrv_co_create_opts_simple</c>).
    /// </summary>
    /// <exception cref="OptionException">An option value is invalid (QEMU's wording).</exception>
    /// <exception cref="ImageLockException">Another process uses the file.</exception>
    /// <exception cref="IOException">Creation failed (QEMU's wording).</exception>
    public override async ValueTask CreateAsync(string fileName, long size, OptionValues options, Action<string>? warning, CancellationToken cancellationToken = default) =>
        await CreateCoreAsync(fileName, size, options, warning, track: false, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Creates as <see cref="CreateAsync(string, long, OptionValues, Action{string}?, CancellationToken)"/> does and
    /// returns the regular file created (or emptied), so that a failed format creation removes that file and nothing
    /// else; null for a device (never removed) or a name that is a symlink.
    /// </summary>
    internal override ValueTask<CreatedFile?> CreateTrackedAsync(string fileName, long size, OptionValues options, Action<string>? warning, CancellationToken cancellationToken) =>
        CreateCoreAsync(fileName, size, options, warning, track: true, cancellationToken);

    private async ValueTask<CreatedFile?> CreateCoreAsync(string fileName, long size, OptionValues options, Action<string>? warning, bool track, CancellationToken cancellationToken)
    {
        string path = PathOf(fileName);
        size = (size + 511) & ~511L;
        bool hasHint = options.Contains("extent_size_hint");
        ulong extentSizeHint = options.GetSize("extent_size_hint", DefaultExtentSizeHint);
        bool nocow = options.GetBool("nocow", false);
        PreallocationMode preallocation = PreallocationMode.Off;
        if (options.GetString("preallocation") is string mode && !PreallocationModeNames.TryParse(mode, out preallocation))
        {
            throw new OptionException($"invalid parameter value: {mode}");
        }

        if (IsHostDevice(fileName, path))
        {
            await CreateOnDeviceAsync(path, size, preallocation, cancellationToken).ConfigureAwait(false);
            return null;
        }

        if (extentSizeHint > uint.MaxValue)
        {
            throw new OptionException("Extent size hint is too large");
        }

        // The directory is held from before the create, so that the cleanup names the entry this run made even when
        // the directories above it are renamed meanwhile.
        int directoryFd = track ? Libc.OpenParentDirectory(path) : -1;
        using var directory = new SafeFileHandle(directoryFd, ownsHandle: true);
        using SafeFileHandle handle = OpenDescriptor(path, Libc.O_RDWR | Libc.O_CLOEXEC | Libc.O_CREAT, 0x1a4, "create");

        // Write and resize, and nobody else may resize: the file must have the asked size when creation returns.
        var permissions = new PermissionPair(BlockPermissions.Write | BlockPermissions.Resize, BlockPermissions.All & ~BlockPermissions.Resize);
        FileLocks.LockForCreate(handle, path, permissions);
        try
        {
            FileTruncation.Truncate(handle, 0, PreallocationMode.Off, BlockLimits.Default);
            if (nocow)
            {
                SetNoCow(handle);
            }

            if (!SetExtentSizeHint(handle, (uint)extentSizeHint, out int hintError) && hasHint && extentSizeHint != 0)
            {
                warning?.Invoke($"Failed to set extent size hint: {Libc.StrError(hintError)}");
            }

            FileTruncation.Truncate(handle, size, preallocation, BlockLimits.Default);
        }
        finally
        {
            FileLocks.UnlockAll(handle);
        }

        if (directory.IsInvalid)
        {
            return null;
        }

        // Track takes the directory descriptor over (a second SafeFileHandle on it; this one must not close it).
        directory.SetHandleAsInvalid();
        return CreatedRegularFile.Track(new SafeFileHandle(directoryFd, ownsHandle: true), path, handle);
    }

    /// <summary>
    /// QEMU's choice between "file" and "host_device": a name with "file:" is always a file; a plain name that
    /// stat()s as a block or character device is a device.
    /// </summary>
    private static bool IsHostDevice(string fileName, string path)
    {
        if (fileName.StartsWith(FilePrefix, StringComparison.Ordinal))
        {
            return false;
        }

        if (fileName.StartsWith(HostDevicePrefix, StringComparison.Ordinal))
        {
            return true;
        }

        return Libc.Stat(path, out Libc.FileStatus status) == 0 && (status.IsBlockDevice || status.IsCharDevice);
    }

    /// <summary>open(2) with QEMU's <c>qemu_open</c> error texts.</summary>
    private static SafeFileHandle OpenDescriptor(string path, int flags, int mode, string action)
    {
        int fd = Libc.Open(path, flags, mode);
        if (fd < 0)
        {
            int errno = Libc.LastError;
            if (errno == Libc.EINVAL && (flags & Libc.O_DIRECT) != 0)
            {
                int plain = Libc.Open(path, flags & ~Libc.O_DIRECT, mode);
                if (plain >= 0)
                {
                    new SafeFileHandle(plain, ownsHandle: true).Dispose();
                    throw new ImageOpenException($"Could not {action} '{path}': filesystem does not support O_DIRECT");
                }
            }

            throw new ImageOpenException($"Could not {action} '{path}': {Libc.StrError(errno)}") { HResult = errno };
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// Opens <paramref name="path"/> confined to <paramref name="directory"/> (<see cref="ConfinedOpen"/>), with
    /// <c>qemu_open</c>'s error texts; a name leading outside fails with HResult EXDEV.
    /// </summary>
    private static SafeFileHandle OpenBeneath(string directory, string path, int flags)
    {
        string relative = ConfinedOpen.RelativeBeneath(directory, path)
            ?? throw new ImageOpenException($"Could not open '{path}': it is outside '{directory}'") { HResult = Libc.EXDEV };
        int dirFd = Libc.Open(directory, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (dirFd < 0)
        {
            throw new ImageOpenException($"Could not open '{directory}': {Libc.StrError(Libc.LastError)}");
        }

        using var dir = new SafeFileHandle(dirFd, ownsHandle: true);
        int fd = ConfinedOpen.Open(dir, relative, flags);
        if (fd == -Libc.EINVAL && (flags & Libc.O_DIRECT) != 0)
        {
            int plain = ConfinedOpen.Open(dir, relative, flags & ~Libc.O_DIRECT);
            if (plain >= 0)
            {
                new SafeFileHandle(plain, ownsHandle: true).Dispose();
                throw new ImageOpenException($"Could not open '{path}': filesystem does not support O_DIRECT");
            }
        }

        if (fd == -Libc.EXDEV)
        {
            throw new ImageOpenException($"Could not open '{path}': it leads outside '{directory}'") { HResult = Libc.EXDEV };
        }

        if (fd < 0)
        {
            throw new ImageOpenException($"Could not open '{path}': {Libc.StrError(-fd)}") { HResult = -fd };
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Linux block devices can be set read-only (blockdev --setro) while open(O_RDWR) still succeeds.</summary>
    private static unsafe void CheckDeviceWritable(SafeFileHandle handle)
    {
        int readOnly = 0;
        int result = Libc.Ioctl(handle, Libc.BLKROGET, &readOnly);
        if (result < 0)
        {
            throw new ImageOpenException($"The device is not writable: {Libc.StrError(-result)}");
        }

        if (readOnly != 0)
        {
            throw new ImageOpenException($"The device is not writable: {Libc.StrError(Libc.EACCES)}");
        }
    }

    /// <summary>
    /// QEMU's <c>raw_probe_alignment</c> for a descriptor opened with O_DIRECT: the request alignment from the
    /// device's logical block size or XFS's DIOINFO, else by trying reads of 1, 512, 1024, 2048 and 4096 bytes (EINVAL
    /// means "misaligned"); the buffer alignment by trying reads into buffers offset by those amounts. A probe that
    /// succeeds at 1 byte learned nothing (unallocated space reads fine at any alignment), so the safe maximum is used.
    /// O_DIRECT on NFS needs no alignment.
    /// </summary>
    /// <exception cref="ImageOpenException">No working alignment: "Could not find working O_DIRECT alignment" + hint.</exception>
    internal static unsafe BlockLimits ProbeAlignment(SafeFileHandle handle, Libc.FileStatus status)
    {
        if (Libc.GetFileSystemType(handle) == Libc.NfsSuperMagic)
        {
            return BlockLimits.Default;
        }

        int requestAlignment = 0;
        int bufferAlignment = 0;
        if (status.IsBlockDevice)
        {
            int sectorSize = 0;
            if (Libc.Ioctl(handle, Libc.BLKSSZGET, &sectorSize) >= 0)
            {
                requestAlignment = sectorSize;
            }
        }

        // struct dioattr { u32 d_mem; u32 d_miniosz; u32 d_maxiosz; } (d_mem is known to be wrong and is ignored).
        uint* dioAttributes = stackalloc uint[3];
        if (Libc.Ioctl(handle, Libc.XFS_IOC_DIOINFO, dioAttributes) >= 0)
        {
            requestAlignment = (int)dioAttributes[1];
        }

        int maxAlign = Math.Max(FileNode.MaxBlockSize, Environment.SystemPageSize);
        ReadOnlySpan<int> alignments = [1, 512, 1024, 2048, 4096];
        if (requestAlignment == 0)
        {
            using var buffer = new AlignedBuffer(maxAlign, maxAlign);
            foreach (int align in alignments)
            {
                if (IsIoAligned(handle, buffer.GetSpan()[..align]))
                {
                    requestAlignment = align != 1 ? align : maxAlign;
                    break;
                }
            }
        }

        if (bufferAlignment == 0)
        {
            using var buffer = new AlignedBuffer(2 * maxAlign, maxAlign);
            foreach (int align in alignments)
            {
                if (IsIoAligned(handle, buffer.GetSpan().Slice(align, maxAlign)))
                {
                    bufferAlignment = align != 1 ? align : requestAlignment;
                    break;
                }
            }
        }

        if (bufferAlignment <= 0 || requestAlignment <= 0 || (requestAlignment & (requestAlignment - 1)) != 0
            || (bufferAlignment & (bufferAlignment - 1)) != 0)
        {
            throw new ImageOpenException("Could not find working O_DIRECT alignment\nTry cache.direct=off");
        }

        int maxTransfer = BlockLimits.Default.MaxTransfer;
        maxTransfer -= maxTransfer % requestAlignment;
        return new BlockLimits(requestAlignment, maxTransfer, bufferAlignment, 0);
    }

    /// <summary>True unless the O_DIRECT read fails with EINVAL (other errors, such as a failing drive, say nothing about alignment).</summary>
    private static bool IsIoAligned(SafeFileHandle handle, Span<byte> buffer)
    {
        long result = Libc.PRead(handle, buffer, 0);
        return result >= 0 || result != -Libc.EINVAL;
    }

    /// <summary>FS_NOCOW_FL (btrfs); any failure is ignored, as in QEMU.</summary>
    private static unsafe void SetNoCow(SafeFileHandle handle)
    {
        int attributes = 0;
        if (Libc.Ioctl(handle, Libc.FS_IOC_GETFLAGS, &attributes) >= 0)
        {
            attributes |= Libc.FS_NOCOW_FL;
            _ = Libc.Ioctl(handle, Libc.FS_IOC_SETFLAGS, &attributes);
        }
    }

    /// <summary>FS_IOC_FSSETXATTR with FS_XFLAG_EXTSIZE (honoured by XFS; other file systems may accept or refuse it).</summary>
    private static unsafe bool SetExtentSizeHint(SafeFileHandle handle, uint hint, out int errno)
    {
        Libc.FsXAttr attributes = default;
        int result = Libc.Ioctl(handle, Libc.FS_IOC_FSGETXATTR, &attributes);
        if (result >= 0)
        {
            attributes.XFlags |= Libc.FS_XFLAG_EXTSIZE;
            attributes.ExtentSize = hint;
            result = Libc.Ioctl(handle, Libc.FS_IOC_FSSETXATTR, &attributes);
        }

        errno = result < 0 ? -result : 0;
        return result >= 0;
    }

    /// <summary>
    /// "Creating" on a device (QEMU's <c>bdrv_co_create_opts_simple</c>): open it for writing, make sure it is at least
    /// <paramref name="size"/> bytes, and zero its first sector so that no old image header is probed.
    /// </summary>
    private async ValueTask CreateOnDeviceAsync(string path, long size, PreallocationMode preallocation, CancellationToken cancellationToken)
    {
        if (preallocation != PreallocationMode.Off)
        {
            throw new FileIOException($"Unsupported preallocation mode '{preallocation.ToOptionValue()}'", Libc.EOPNOTSUPP);
        }

        BlockNode node;
        try
        {
            node = await OpenAsync(HostDevicePrefix + path, new ProtocolOpenOptions(false, CacheMode.Writeback), cancellationToken).ConfigureAwait(false);
        }
        catch (ImageOpenException e)
        {
            throw new ImageOpenException($"Protocol driver 'host_device' does not support image creation, and opening the image failed: {e.Message}", e);
        }

        await using (node.ConfigureAwait(false))
        {
            node.SetPermissions(PermissionPair.ForOpen(writable: true, noIo: false, resize: true, noShare: false));
            if (node.Length < size)
            {
                throw new FileIOException("Cannot grow device files", Libc.EINVAL);
            }

            long clear = Math.Min(node.Length, 512);
            if (clear > 0)
            {
                try
                {
                    await node.WriteZeroesAsync(0, clear, ZeroFlags.MayUnmap, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    throw new FileIOException($"Failed to clear the new image's first sector: {e.Message}", e.HResult);
                }
            }

            try
            {
                await node.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // As QEMU's close: a device that cannot fdatasync (/dev/null says EINVAL) does not fail the creation.
            }
        }
    }
}
