using Qimg.Block;
using Qimg.Interop;

namespace Qimg.Formats.Raw;

/// <summary>
/// An open raw image: every request passes to the file, shifted by the <c>offset</c> option and bounded by the
/// <c>size</c> option when given.
/// </summary>
/// <remarks>
/// A raw image whose format was probed rather than given is restricted as in QEMU: its requests are aligned to 512
/// bytes, and a write to the first sector is refused (EPERM) when the new content would probe as another format —
/// otherwise a guest could turn its disk into, say, a qcow2 image naming a host file as its backing file.
/// </remarks>
public sealed class RawImage : FormatNode
{
    private readonly FormatRegistry? _probeRegistry;
    private readonly long _offset;
    private readonly long? _size;

    internal RawImage(BlockNode file, bool readOnly, FormatRegistry? probeRegistry, long offset, long? size)
        : base(file, readOnly)
    {
        _probeRegistry = probeRegistry;
        _offset = offset;
        _size = size;
    }

    public override string DriverName => "raw";

    /// <summary>True when the format was guessed by probing; writes to block 0 are then restricted.</summary>
    public bool Probed => _probeRegistry is not null;

    /// <summary>Where the image starts in the file (the <c>offset</c> option).</summary>
    public long Offset => _offset;

    /// <summary>
    /// The file's length minus the offset, or the <c>size</c> option when given (but never past the end of the file).
    /// Re-read on every call: a raw image follows its file.
    /// </summary>
    public override long Length
    {
        get
        {
            long fileLength = File.Length;
            if (fileLength < _offset)
            {
                return 0;
            }

            long available = fileLength - _offset;
            return _size is long size ? Math.Min(size, available) : available;
        }
    }

    /// <summary>Sub-sector writes to a probed image are read-modify-write, so the first sector is always written whole.</summary>
    public override BlockLimits Limits => Probed ? BlockLimits.Default with { RequestAlignment = RawDriver.ProbeSize } : BlockLimits.Default;

    protected override bool HasZeroInitCore => File.HasZeroInit;

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
        File.ReadAsync(offset + _offset, buffer, cancellationToken);

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken)
    {
        flags &= ~WriteFlags.Compressed;
        if (_probeRegistry is not null && offset < RawDriver.ProbeSize)
        {
            // Requests are 512-aligned here, so this write covers the whole first sector. Check a private copy: the
            // caller's buffer could change between the check and the write.
            byte[] first = data.Span[..RawDriver.ProbeSize].ToArray();
            if (_probeRegistry.Probe(first, null) != RawDriver.Instance)
            {
                throw new IOException(Libc.StrError(Libc.EPERM), Libc.EPERM);
            }

            await File.WriteAsync(offset + _offset, first, flags, cancellationToken).ConfigureAwait(false);
            offset += first.Length;
            data = data[first.Length..];
            if (data.IsEmpty)
            {
                return;
            }
        }

        await File.WriteAsync(offset + _offset, data, flags, cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        await File.WriteZeroesAsync(offset + _offset, length, flags, cancellationToken).ConfigureAwait(false);
        return true;
    }

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        File.DiscardAsync(offset + _offset, length, cancellationToken);

    /// <exception cref="NotSupportedException">The <c>size</c> option fixes the size ("Cannot resize fixed-size raw disks").</exception>
    /// <exception cref="Operations.OperationException">The size plus the <c>offset</c> option is past 2^63.</exception>
    protected override ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken)
    {
        if (_size is not null)
        {
            throw new NotSupportedException("Cannot resize fixed-size raw disks");
        }

        if (long.MaxValue - length < _offset)
        {
            throw new Operations.OperationException("Disk size too large for the chosen offset");
        }

        return File.TruncateAsync(length + _offset, preallocation, exact, cancellationToken);
    }

    /// <summary>Raw answers nothing itself: the file's answer at the same (shifted) offset is the image's.</summary>
    protected override ValueTask<BlockStatus> GetBlockStatusCoreAsync(long offset, long length, bool wantZero, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, File, offset + _offset));
}
