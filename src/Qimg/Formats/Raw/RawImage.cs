using Qimg.Block;

namespace Qimg.Formats.Raw;

/// <summary>An open raw image: every request passes straight to the file.</summary>
public sealed class RawImage : FormatNode
{
    internal RawImage(BlockNode file, bool readOnly, bool probed)
        : base(file, readOnly)
    {
        Probed = probed;
    }

    public override string DriverName => "raw";

    /// <summary>True when the format was guessed by probing; writes to block 0 are then restricted.</summary>
    public bool Probed { get; }

    public override long Length => File.Length;

    protected override bool HasZeroInitCore => File.HasZeroInit;

    protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
        File.ReadAsync(offset, buffer, cancellationToken);

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken) =>
        File.WriteAsync(offset, data, flags & ~WriteFlags.Compressed, cancellationToken);

    protected override async ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken)
    {
        await File.WriteZeroesAsync(offset, length, flags, cancellationToken).ConfigureAwait(false);
        return true;
    }

    protected override ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) =>
        File.DiscardAsync(offset, length, cancellationToken);

    protected override ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken) =>
        File.TruncateAsync(length, preallocation, exact, cancellationToken);

    protected override ValueTask<BlockStatus> GetBlockStatusCoreAsync(long offset, long length, bool wantZero, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, File, offset));
}
