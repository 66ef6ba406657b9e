using Microsoft.Win32.SafeHandles;
using Qimg.Block;
using Qimg.Interop;

namespace Qimg.Protocols.File;

/// <summary>
/// An open local file or host device (QEMU's file-posix "file" and "host_device" drivers): positional I/O on a
/// descriptor opened with open(2), holes via SEEK_DATA/SEEK_HOLE, zeroing and discarding via fallocate(2), QEMU's
/// image locks, and O_DIRECT with the alignment QEMU would probe.
/// </summary>
/// <remarks>
/// <para>Thread-safe: every I/O operation is one or more positional system calls; permission changes happen while
/// opening. Requests complete synchronously (the <see cref="ValueTask"/>s are already completed); parallelism comes
/// from the callers issuing several requests at once.</para>
/// <para>Reads past the end of the file read as zeroes; writes past the end extend the file. <see cref="Length"/> is
/// the file size rounded up to 512 bytes as QEMU reports it; <see cref="FileLength"/> is the exact size.</para>
/// <para>I/O errors surface as <see cref="IOException"/> whose HResult is the errno and whose message is strerror.</para>
/// </remarks>
public sealed class FileNode : BlockNode
{
    /// <summary>QEMU's MAX_BLOCKSIZE: the largest logical block size it expects.</summary>
    internal const int MaxBlockSize = 4096;

    private readonly SafeFileHandle _handle;
    private readonly ProtocolOpenOptions _options;
    private readonly FileLocks? _locks;
    private readonly BlockLimits _limits;
    private readonly bool _isDevice;
    private readonly bool _isBlockDevice;
    private long _length;
    private long _writeGeneration;
    private long _flushedGeneration;
    private int _pageCacheInconsistent;
    private volatile bool _hasWriteZeroes;
    private volatile bool _hasDiscard = true;
    private volatile bool _hasFallocate;

    internal FileNode(string fileName, SafeFileHandle handle, ProtocolOpenOptions options, Libc.FileStatus status, BlockLimits limits, bool locking)
        : base(fileName, options.ReadOnly)
    {
        _handle = handle;
        _options = options;
        _limits = limits;
        _isDevice = !status.IsRegular;
        _isBlockDevice = status.IsBlockDevice;
        _hasFallocate = status.IsRegular;

        // Linux leaves stale data in the page cache after BLKZEROOUT unless the device is opened with O_DIRECT.
        _hasWriteZeroes = !_isBlockDevice || options.Cache.Direct;
        _length = QueryLength();
        if (locking)
        {
            _locks = new FileLocks(handle, fileName);
        }
    }

    /// <summary>"file" for regular files, "host_device" for block and character devices (as QEMU names them).</summary>
    public override string DriverName => _isDevice ? "host_device" : "file";

    public override bool IsProtocol => true;

    /// <summary>
    /// Writes past the end go to the kernel, as QEMU's file-posix sends them: regular files grow; a device takes them
    /// or fails with the kernel's errno (ENOSPC on /dev/full or past the end of a block device). Refusing them here
    /// instead would turn a qcow2 created on a character device into an argument error rather than QEMU's messages.
    /// </summary>
    public override bool CanGrow => true;

    /// <summary>The exact size of the file in bytes.</summary>
    public long FileLength => Volatile.Read(ref _length);

    /// <summary>The file size rounded up to a multiple of 512, as QEMU reports protocol sizes.</summary>
    public override long Length => (FileLength + 511) & ~511L;

    public override BlockLimits Limits => _limits;

    /// <summary>The descriptor. Callers must not close it, move its file offset assumptions, or take locks on it.</summary>
    public SafeFileHandle Handle => _handle;

    /// <summary>The cache mode the file was opened with.</summary>
    public CacheMode Cache => _options.Cache;

    /// <summary>The permissions this node currently holds QEMU's image locks for (Unused when locking is off).</summary>
    public PermissionPair LockedPermissions => _locks?.Current ?? PermissionPair.Unused;

    /// <summary>A new regular file reads as zeroes (holes); a device may hold anything (QEMU's <c>bdrv_has_zero_init_1</c> for "file" only).</summary>
    protected override bool HasZeroInitCore => !_isDevice;

    /// <summary>Bytes allocated on the host: st_blocks × 512 (QEMU's <c>raw_get_allocated_file_size</c>).</summary>
    public override long GetAllocatedSize() =>
        Libc.FStat(_handle, out Libc.FileStatus status) == 0 ? status.Blocks * 512 : -1;

    /// <summary>
    /// Takes QEMU's image locks for <paramref name="permissions"/> (with <c>-U</c>, everything is shared). A no-op when
    /// locking is off.
    /// </summary>
    /// <exception cref="ImageLockException">Another process holds the image in a conflicting way.</exception>
    public override void SetPermissions(PermissionPair permissions)
    {
        ThrowIfDisposed();
        if (_options.ForceShare)
        {
            permissions = permissions with { Shared = BlockPermissions.All };
        }

        _locks?.Change(permissions);
    }

    // ---------------------------------------------------------------- read and write

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        Span<byte> span = buffer.Span;
        int done = 0;
        while (done < span.Length)
        {
            long read = Libc.PRead(_handle, span[done..], offset + done);
            if (read > 0)
            {
                done += (int)read;
                continue;
            }

            if (read == 0)
            {
                break;
            }

            int errno = (int)-read;
            if (errno == Libc.EINVAL && _options.Cache.Direct && done > 0)
            {
                // After a short O_DIRECT read at the end of the file, the next offset is unaligned: that is EOF.
                break;
            }

            throw Libc.IOError(errno);
        }

        // Past the end of the file: reads as zeroes.
        span[done..].Clear();
        return default;
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
    {
        try
        {
            WriteUntracked(offset, data);
        }
        finally
        {
            NoteModified();
        }

        // FUA (or write-through) after the write is counted, so that a later flush with nothing new to flush is skipped.
        if ((flags & WriteFlags.Fua) != 0 || _options.Cache.WriteThrough)
        {
            return FlushCoreAsync(cancellationToken);
        }

        return default;
    }

    private void WriteUntracked(long offset, ReadOnlyMemory<byte> data)
    {
        ReadOnlySpan<byte> span = data.Span;
        int done = 0;
        while (done < span.Length)
        {
            long written = Libc.PWrite(_handle, span[done..], offset + done);
            if (written < 0)
            {
                UpdateLength(offset + done);
                throw Libc.IOError((int)-written);
            }

            if (written == 0)
            {
                UpdateLength(offset + done);
                throw Libc.IOError(Libc.EINVAL);
            }

            done += (int)written;
        }

        UpdateLength(offset + span.Length);
    }

    /// <summary>
    /// fdatasync, skipped when nothing was written, zeroed, discarded or resized since the last successful flush
    /// (QEMU's <c>flushed_gen == write_gen</c> check), so that the flushes a command issues are the ones QEMU issues.
    /// </summary>
    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        long current = Volatile.Read(ref _writeGeneration);
        if (current == Volatile.Read(ref _flushedGeneration) && Volatile.Read(ref _pageCacheInconsistent) == 0)
        {
            return default;
        }

        FlushToDisk();
        long flushed;
        while (current > (flushed = Volatile.Read(ref _flushedGeneration))
            && Interlocked.CompareExchange(ref _flushedGeneration, current, flushed) != flushed)
        {
        }

        return default;
    }

    /// <summary>How many modifying requests have completed (QEMU's <c>write_gen</c>); a flush covers those it saw.</summary>
    private void NoteModified() => Interlocked.Increment(ref _writeGeneration);

    /// <summary>
    /// fdatasync, unless the cache mode is "unsafe". After a failed fdatasync on a buffered file, the page cache may
    /// hold pages marked clean that never reached the disk, so every later flush fails too (QEMU's
    /// <c>page_cache_inconsistent</c>).
    /// </summary>
    private void FlushToDisk()
    {
        if (_options.Cache.NoFlush)
        {
            return;
        }

        int inconsistent = Volatile.Read(ref _pageCacheInconsistent);
        if (inconsistent != 0)
        {
            throw Libc.IOError(inconsistent);
        }

        int errno = Libc.FDataSync(_handle);
        if (errno != 0)
        {
            if (!_options.Cache.Direct)
            {
                Volatile.Write(ref _pageCacheInconsistent, errno);
            }

            throw Libc.IOError(errno);
        }
    }

    // ---------------------------------------------------------------- zeroes and discard

    /// <summary>
    /// QEMU's <c>handle_aiocb_write_zeroes[_unmap]</c>: with MayUnmap, punch a hole; otherwise (or when that is not
    /// possible) FALLOC_FL_ZERO_RANGE, then punch-hole-and-reallocate, then plain fallocate past the end of the file.
    /// Returns false when none works, so that the base class writes zero buffers (or fails with NoFallback).
    /// </summary>
    protected override ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        try
        {
            return TryWriteZeroesUntracked(offset, length, flags);
        }
        finally
        {
            NoteModified();
        }
    }

    private ValueTask<bool> TryWriteZeroesUntracked(long offset, long length, ZeroFlags flags)
    {
        bool done = _isBlockDevice
            ? TryWriteZeroesDevice(offset, length, flags)
            : TryWriteZeroesFile(offset, length, flags);
        return ValueTask.FromResult(done);
    }

    private bool TryWriteZeroesFile(long offset, long length, ZeroFlags flags)
    {
        if (_isDevice)
        {
            return false;
        }

        long end = offset + length;
        if ((flags & ZeroFlags.MayUnmap) != 0)
        {
            int ret = Libc.FAllocate(_handle, Libc.FallocPunchHole | Libc.FallocKeepSize, offset, length);
            if (ret == 0)
            {
                // A hole punched with KEEP_SIZE does not extend the file; extend it so that the node covers the
                // range like any other write (the new part is a hole and reads as zeroes).
                if (end > FileLength)
                {
                    ExtendTo(end);
                }

                return true;
            }

            if (ret is not (Libc.EOPNOTSUPP or Libc.EINVAL or Libc.EBUSY))
            {
                throw Libc.IOError(ret);
            }
        }

        if (_hasWriteZeroes)
        {
            int ret = Libc.FAllocate(_handle, Libc.FallocZeroRange, offset, length);
            if (ret == 0)
            {
                RefreshLength();
                return true;
            }

            if (ret == Libc.EOPNOTSUPP)
            {
                _hasWriteZeroes = false;
            }
            else if (ret != Libc.EINVAL)
            {
                // Some file systems refuse unaligned ranges with EINVAL; other errors are real.
                throw Libc.IOError(ret);
            }
        }

        if (_hasDiscard && _hasFallocate)
        {
            int ret = Libc.FAllocate(_handle, Libc.FallocPunchHole | Libc.FallocKeepSize, offset, length);
            if (ret == 0)
            {
                ret = Libc.FAllocate(_handle, 0, offset, length);
                if (ret == 0)
                {
                    RefreshLength();
                    return true;
                }

                if (ret != Libc.EOPNOTSUPP)
                {
                    throw Libc.IOError(ret);
                }

                _hasFallocate = false;
            }
            else if (ret == Libc.EOPNOTSUPP)
            {
                _hasDiscard = false;
            }
            else if (ret != Libc.EINVAL)
            {
                throw Libc.IOError(ret);
            }
        }

        if (_hasFallocate && offset >= Length)
        {
            // Extending the file with zeroes: plain fallocate does that.
            int ret = Libc.FAllocate(_handle, 0, offset, length);
            if (ret == 0)
            {
                RefreshLength();
                return true;
            }

            if (ret != Libc.EOPNOTSUPP)
            {
                throw Libc.IOError(ret);
            }

            _hasFallocate = false;
        }

        return false;
    }

    private unsafe bool TryWriteZeroesDevice(long offset, long length, ZeroFlags flags)
    {
        if ((flags & ZeroFlags.MayUnmap) != 0)
        {
            int ret = Libc.FAllocate(_handle, Libc.FallocPunchHole | Libc.FallocKeepSize, offset, length);
            if (ret == 0)
            {
                return true;
            }

            if (ret is not (Libc.EOPNOTSUPP or Libc.EINVAL or Libc.EBUSY))
            {
                throw Libc.IOError(ret);
            }
        }

        // BLKZEROOUT may fall back to writing zeroes in the kernel, which NoFallback forbids.
        if (!_hasWriteZeroes || (flags & ZeroFlags.NoFallback) != 0)
        {
            return false;
        }

        ulong* range = stackalloc ulong[2];
        range[0] = (ulong)offset;
        range[1] = (ulong)length;
        int result = Libc.Ioctl(_handle, Libc.BLKZEROOUT, range);
        if (result >= 0)
        {
            return true;
        }

        int errno = Libc.TranslateNotSupported(-result);
        if (errno != Libc.EOPNOTSUPP)
        {
            throw Libc.IOError(errno);
        }

        _hasWriteZeroes = false;
        return false;
    }

    /// <summary>
    /// Punches a hole (files) or issues BLKDISCARD (block devices). As in QEMU, a file system or device that cannot
    /// discard silently keeps the data; other failures are reported.
    /// </summary>
    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        try
        {
            return DiscardUntracked(offset, length);
        }
        finally
        {
            NoteModified();
        }
    }

    private unsafe ValueTask DiscardUntracked(long offset, long length)
    {
        if (!_hasDiscard)
        {
            return default;
        }

        int ret;
        if (_isBlockDevice)
        {
            ulong* range = stackalloc ulong[2];
            range[0] = (ulong)offset;
            range[1] = (ulong)length;
            int result = Libc.Ioctl(_handle, Libc.BLKDISCARD, range);
            ret = result >= 0 ? 0 : Libc.TranslateNotSupported(-result);
        }
        else if (_isDevice)
        {
            ret = Libc.EOPNOTSUPP;
        }
        else
        {
            ret = Libc.FAllocate(_handle, Libc.FallocPunchHole | Libc.FallocKeepSize, offset, length);
        }

        if (ret == Libc.EOPNOTSUPP)
        {
            _hasDiscard = false;
        }
        else if (ret != 0)
        {
            throw Libc.IOError(ret);
        }

        return default;
    }

    // ---------------------------------------------------------------- resize

    /// <summary>
    /// Regular files are always resized to exactly <paramref name="length"/>, growing with <paramref name="preallocation"/>
    /// as <see cref="FileTruncation"/> describes. Devices cannot be resized: shrinking is accepted when not
    /// <paramref name="exact"/> (the device keeps its size), growing is refused.
    /// </summary>
    /// <exception cref="IOException">The resize failed (QEMU's message; HResult is the errno when there is one).</exception>
    protected override ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken)
    {
        if (_isDevice)
        {
            // A device's size never changes: there is nothing for a later flush to make durable.
            return TruncateUntracked(length, preallocation, exact);
        }

        try
        {
            return TruncateUntracked(length, preallocation, exact);
        }
        finally
        {
            NoteModified();
        }
    }

    private ValueTask TruncateUntracked(long length, PreallocationMode preallocation, bool exact)
    {
        if (!_isDevice)
        {
            try
            {
                FileTruncation.Truncate(_handle, length, preallocation, _limits);
            }
            finally
            {
                RefreshLength();
            }

            return default;
        }

        if (preallocation != PreallocationMode.Off)
        {
            throw new FileIOException($"Preallocation mode '{preallocation.ToOptionValue()}' unsupported for this non-regular file", Libc.EOPNOTSUPP);
        }

        long current = FileLength;
        if (length != current && exact)
        {
            throw new FileIOException("Cannot resize device files", Libc.EOPNOTSUPP);
        }

        if (length > current)
        {
            throw new FileIOException("Cannot grow device files", Libc.EINVAL);
        }

        return default;
    }

    // ---------------------------------------------------------------- block status

    /// <summary>
    /// QEMU's <c>raw_co_block_status</c>: without <paramref name="wantZero"/> everything is data; otherwise
    /// SEEK_DATA/SEEK_HOLE tell data from holes (a hole reads as zeroes). A data extent ending in a partial block at
    /// the end of the file is rounded up to the request alignment. When the file system cannot say, everything is data.
    /// </summary>
    protected override ValueTask<BlockStatus> GetBlockStatusCoreAsync(long offset, long length, bool wantZero, CancellationToken cancellationToken)
    {
        if (!wantZero)
        {
            return ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, length, this, offset));
        }

        BlockStatusFlags flags;
        long count;
        int ret = FindAllocation(offset, out long data, out long hole);
        if (ret == Libc.ENXIO)
        {
            // A trailing hole.
            flags = BlockStatusFlags.Zero;
            count = length;
        }
        else if (ret != 0)
        {
            // No information: pretend there are no holes.
            flags = BlockStatusFlags.Data;
            count = length;
        }
        else if (data == offset)
        {
            flags = BlockStatusFlags.Data;
            count = hole - offset;
            int align = Math.Max(1, _limits.RequestAlignment);
            if (count % align != 0)
            {
                // Only the end of the file can end a data extent in the middle of a block.
                count += align - count % align;
            }
        }
        else
        {
            flags = BlockStatusFlags.Zero;
            count = data - offset;
        }

        // The driver hook may not answer for more than it was asked.
        count = Math.Min(count, length);
        return ValueTask.FromResult(new BlockStatus(flags | BlockStatusFlags.OffsetValid, count, this, offset));
    }

    /// <summary>
    /// QEMU's <c>find_allocation</c>: 0 with <paramref name="data"/> = start and <paramref name="hole"/> = the next hole
    /// when <paramref name="start"/> is in data, or <paramref name="hole"/> = start and <paramref name="data"/> = the next
    /// data when it is in a hole; ENXIO in a trailing hole (or past the end); another errno when nothing is known.
    /// </summary>
    private int FindAllocation(long start, out long data, out long hole)
    {
        data = 0;
        hole = 0;
        long offs = Libc.LSeek(_handle, start, Libc.SeekData);
        if (offs < 0)
        {
            return Libc.LastError;
        }

        if (offs < start)
        {
            return Libc.EIO;
        }

        if (offs > start)
        {
            hole = start;
            data = offs;
            return 0;
        }

        offs = Libc.LSeek(_handle, start, Libc.SeekHole);
        if (offs < 0)
        {
            return Libc.LastError;
        }

        if (offs < start)
        {
            return Libc.EIO;
        }

        if (offs > start)
        {
            data = start;
            hole = offs;
            return 0;
        }

        // Data, then a hole at the same offset: a hole was dug between the two calls.
        return Libc.EBUSY;
    }

    // ---------------------------------------------------------------- helpers

    private long QueryLength()
    {
        long size = Libc.LSeek(_handle, 0, Libc.SeekEnd);
        return size < 0 ? 0 : size;
    }

    private void RefreshLength()
    {
        if (!_isDevice)
        {
            Volatile.Write(ref _length, QueryLength());
        }
    }

    private void ExtendTo(long end)
    {
        int errno = Libc.FTruncate(_handle, end);
        if (errno != 0)
        {
            throw Libc.IOError(errno);
        }

        UpdateLength(end);
    }

    private void UpdateLength(long end)
    {
        long current;
        while (end > (current = Volatile.Read(ref _length)))
        {
            if (Interlocked.CompareExchange(ref _length, end, current) == current)
            {
                break;
            }
        }
    }

    /// <summary>Tells the node that bytes up to <paramref name="end"/> were written behind its back (copy offloading).</summary>
    internal void NoteWrittenUpTo(long end)
    {
        UpdateLength(end);
        NoteModified();
    }

    protected override ValueTask DisposeCoreAsync()
    {
        // Closing the descriptor releases its OFD locks.
        _handle.Dispose();
        return default;
    }
}
