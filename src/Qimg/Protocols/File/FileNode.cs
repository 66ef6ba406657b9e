using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Qimg.Block;
using Qimg.Interop;

namespace Qimg.Protocols.File;

/// <summary>An open local file: positional I/O on a <see cref="SafeFileHandle"/>, holes via SEEK_DATA/SEEK_HOLE.</summary>
/// <remarks>Thread-safe: every operation is a positional system call.</remarks>
public sealed class FileNode : BlockNode
{
    private readonly SafeFileHandle _handle;
    private readonly ProtocolOpenOptions _options;
    private long _length;

    internal FileNode(string fileName, SafeFileHandle handle, ProtocolOpenOptions options)
        : base(fileName, options.ReadOnly)
    {
        _handle = handle;
        _options = options;
        _length = RandomAccess.GetLength(handle);
    }

    public override string DriverName => "file";

    public override bool IsProtocol => true;

    public override bool CanGrow => true;

    /// <summary>The exact size of the file in bytes.</summary>
    public long FileLength => Volatile.Read(ref _length);

    /// <summary>The file size rounded up to a multiple of 512, as QEMU reports protocol sizes.</summary>
    public override long Length => (FileLength + 511) & ~511L;

    public SafeFileHandle Handle => _handle;

    /// <summary>A new regular file reads as zeroes (holes); a block device may hold anything.</summary>
    protected override bool HasZeroInitCore => Libc.IsRegularFile(_handle);

    public override long GetAllocatedSize()
    {
        long blocks = Libc.GetAllocatedBlocks(_handle);
        return blocks < 0 ? -1 : blocks * 512;
    }

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        Span<byte> span = buffer.Span;
        while (!span.IsEmpty)
        {
            int read = RandomAccess.Read(_handle, span, offset);
            if (read == 0)
            {
                // Past the end of the file: reads as zeroes.
                span.Clear();
                break;
            }

            span = span[read..];
            offset += read;
        }

        return default;
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
    {
        RandomAccess.Write(_handle, data.Span, offset);
        UpdateLength(offset + data.Length);
        if ((flags & WriteFlags.Fua) != 0 || _options.Cache.WriteThrough)
        {
            RandomAccess.FlushToDisk(_handle);
        }

        return default;
    }

    protected override ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        // Punching a hole keeps the size and reads back as zeroes; zero-range keeps the blocks allocated.
        int mode = (flags & ZeroFlags.MayUnmap) != 0
            ? Libc.FallocPunchHole | Libc.FallocKeepSize
            : Libc.FallocZeroRange;
        long end = offset + length;
        if (end > FileLength && (mode & Libc.FallocPunchHole) != 0)
        {
            // The part past the end needs the file extended; a hole there reads as zero.
            if (offset < FileLength && Libc.FAllocate(_handle, mode, offset, FileLength - offset) != 0)
            {
                return ValueTask.FromResult(false);
            }

            RandomAccess.SetLength(_handle, end);
            UpdateLength(end);
            return ValueTask.FromResult(true);
        }

        if (Libc.FAllocate(_handle, mode, offset, length) != 0)
        {
            return ValueTask.FromResult(false);
        }

        UpdateLength(end);
        return ValueTask.FromResult(true);
    }

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken)
    {
        // Best effort, as in QEMU: a file system without hole punching keeps the data.
        long end = Math.Min(offset + length, FileLength);
        if (end > offset)
        {
            _ = Libc.FAllocate(_handle, Libc.FallocPunchHole | Libc.FallocKeepSize, offset, end - offset);
        }

        return default;
    }

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        if (!_options.Cache.NoFlush)
        {
            RandomAccess.FlushToDisk(_handle);
        }

        return default;
    }

    protected override ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken)
    {
        long current = FileLength;
        if (length < current || preallocation == PreallocationMode.Off || preallocation == PreallocationMode.Metadata)
        {
            RandomAccess.SetLength(_handle, length);
        }
        else
        {
            Preallocate(_handle, current, length, preallocation, FileName);
        }

        Volatile.Write(ref _length, RandomAccess.GetLength(_handle));
        return default;
    }

    protected override ValueTask<BlockStatus> GetBlockStatusCoreAsync(long offset, long length, bool wantZero, CancellationToken cancellationToken)
    {
        if (!wantZero)
        {
            return ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, length, this, offset));
        }

        BlockStatusFlags flags;
        long count;
        long data = Libc.LSeek(_handle, offset, Libc.SeekData);
        if (data < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            // ENXIO: a trailing hole; anything else: no information, so pretend there are no holes.
            flags = errno == Libc.ENXIO ? BlockStatusFlags.Zero : BlockStatusFlags.Data;
            count = length;
        }
        else if (data > offset)
        {
            flags = BlockStatusFlags.Zero;
            count = data - offset;
        }
        else
        {
            long hole = Libc.LSeek(_handle, offset, Libc.SeekHole);
            if (hole <= offset)
            {
                flags = BlockStatusFlags.Data;
                count = length;
            }
            else
            {
                flags = BlockStatusFlags.Data;
                // A data extent may end in a partial sector at EOF; round up like QEMU.
                count = (hole - offset + 511) & ~511L;
            }
        }

        count = Math.Clamp(count, 1, length);
        return ValueTask.FromResult(new BlockStatus(flags | BlockStatusFlags.OffsetValid, count, this, offset));
    }

    internal static void Preallocate(SafeFileHandle handle, long from, long to, PreallocationMode mode, string displayName)
    {
        if (to <= from)
        {
            RandomAccess.SetLength(handle, to);
            return;
        }

        switch (mode)
        {
            case PreallocationMode.Off:
            case PreallocationMode.Metadata:
                RandomAccess.SetLength(handle, to);
                break;
            case PreallocationMode.Falloc:
                if (Libc.FAllocate(handle, 0, from, to - from) != 0)
                {
                    throw new IOException($"Could not preallocate new data: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
                }

                break;
            case PreallocationMode.Full:
                byte[] zeroes = new byte[1 << 20];
                for (long offset = from; offset < to; offset += zeroes.Length)
                {
                    int chunk = (int)Math.Min(zeroes.Length, to - offset);
                    RandomAccess.Write(handle, zeroes.AsSpan(0, chunk), offset);
                }

                break;
        }
    }

    /// <summary>Tells the node that bytes up to <paramref name="end"/> were written behind its back (copy offloading).</summary>
    internal void NoteWrittenUpTo(long end) => UpdateLength(end);

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

    protected override ValueTask DisposeCoreAsync()
    {
        _handle.Dispose();
        return default;
    }
}
