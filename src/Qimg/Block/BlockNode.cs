namespace Qimg.Block;

/// <summary>
/// A byte-addressed block device: an open image format (qcow2, raw…) or a protocol (a file). This is the one
/// I/O contract of qimg, QEMU's <c>BlockDriverState</c> reduced to what qemu-img needs.
/// </summary>
/// <remarks>
/// <para>
/// Public entry points are non-virtual. They validate and normalize each request, then call the
/// <c>…CoreAsync</c> methods a driver overrides. Guarantees a driver can rely on:
/// </para>
/// <list type="bullet">
/// <item>requests are never empty and never negative;</item>
/// <item>offsets and lengths are multiples of <see cref="Limits"/>.RequestAlignment, single transfers are at most
/// MaxTransfer bytes, and buffers are aligned to MemoryAlignment (the base class bounces and splits);</item>
/// <item>reads lie within <see cref="Length"/> (the part of a read past the end is zero-filled by the base class);</item>
/// <item>writes lie within <see cref="Length"/> unless the node <see cref="CanGrow"/> (protocols do);</item>
/// <item>writes never reach a read-only node.</item>
/// </list>
/// <para>
/// Drivers must fill the whole read buffer (zero-filling what lies past the end of their storage) and write the
/// whole buffer; there are no short transfers at this seam. Nodes are safe for concurrent requests: the copy
/// engine issues several at once.
/// </para>
/// <para>
/// <see cref="GetBlockStatusAsync"/> reports this node's own layer only, with QEMU's <c>bdrv_co_block_status</c>
/// semantics; <see cref="BackingChain"/> composes the layers of a backing chain.
/// </para>
/// </remarks>
public abstract class BlockNode : IAsyncDisposable, IDisposable
{
    private int _disposed;
    private SemaphoreSlim? _readModifyWriteLock;

    protected BlockNode(string fileName, bool readOnly)
    {
        FileName = fileName;
        IsReadOnly = readOnly;
    }

    /// <summary>QEMU's <c>bs->filename</c>: the file name shown by <c>info</c> and <c>map</c>.</summary>
    public string FileName { get; protected set; }

    /// <summary>The exact QEMU driver name: "file", "raw", "qcow2"…</summary>
    public abstract string DriverName { get; }

    /// <summary>
    /// The size of the node as QEMU reports it (<c>bdrv_getlength</c>): the virtual disk size for formats, the file size
    /// rounded up to a multiple of 512 for protocols.
    /// </summary>
    public abstract long Length { get; }

    /// <summary>True when the node was opened read-only; writes then throw <see cref="InvalidOperationException"/>.</summary>
    public bool IsReadOnly { get; }

    /// <summary>True for protocol nodes (which hold bytes at the offsets they are asked for).</summary>
    public virtual bool IsProtocol => false;

    /// <summary>True when writes past <see cref="Length"/> extend the node (files do, formats do not).</summary>
    public virtual bool CanGrow => false;

    /// <summary>True for formats that can have a backing file (QEMU's <c>supports_backing</c>).</summary>
    public virtual bool SupportsBacking => false;

    /// <summary>The primary child (the file a format is stored in), or null for protocols.</summary>
    public virtual BlockNode? File => null;

    /// <summary>The backing node when one is attached.</summary>
    public virtual BlockNode? Backing => null;

    /// <summary>Every child with its name and role, in QEMU's order (file, backing, data-file…).</summary>
    public virtual IReadOnlyList<BlockChild> Children => [];

    /// <summary>Request limits; the base class makes every request that reaches a driver satisfy them.</summary>
    public virtual BlockLimits Limits => BlockLimits.Default;

    /// <summary>
    /// True when a freshly created node reads as zeroes everywhere it was not written (QEMU's <c>bdrv_has_zero_init</c>):
    /// never for a node with a backing file, otherwise as the driver says (<see cref="HasZeroInitCore"/>). Convert uses
    /// it to skip writing zeroes into a new target.
    /// </summary>
    public bool HasZeroInit => Backing is null && HasZeroInitCore;

    /// <summary>The driver's zero-initialization answer for a node without a backing file; false is always safe.</summary>
    protected virtual bool HasZeroInitCore => false;

    /// <summary>
    /// Bytes the node occupies on the host (QEMU's <c>bdrv_get_allocated_file_size</c>, "disk size" in <c>info</c>):
    /// by default the sum over the children that hold data or metadata, each counted once. -1 when unknown.
    /// </summary>
    public virtual long GetAllocatedSize()
    {
        long sum = 0;
        bool any = false;
        var seen = new HashSet<BlockNode>(ReferenceEqualityComparer.Instance);
        foreach (BlockChild child in Children)
        {
            if ((child.Role & (ChildRole.Data | ChildRole.Metadata)) == 0 || !seen.Add(child.Node))
            {
                continue;
            }

            long size = child.Node.GetAllocatedSize();
            if (size < 0)
            {
                return size;
            }

            sum += size;
            any = true;
        }

        return any ? sum : -1;
    }

    /// <summary>
    /// Declares what this node's users need and what they let others do (QEMU's permission system, reduced to the
    /// nodes whose storage other processes can see). File nodes take QEMU's image locks for it, so that QEMU, qemu-io,
    /// qemu-nbd and other qimg processes see the image in use; the default does nothing. The opener
    /// (<see cref="DiskImage"/>) calls this for every protocol node with the permissions QEMU would compute for it.
    /// </summary>
    /// <exception cref="IOException">Another process holds the image in a conflicting way (an
    /// <see cref="Protocols.File.ImageLockException"/> for files, message and hint in QEMU's words).</exception>
    public virtual void SetPermissions(PermissionPair permissions)
    {
    }

    // ---------------------------------------------------------------- read

    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; bytes past the end read as zero.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative offset.</exception>
    /// <exception cref="IOException">The storage failed.</exception>
    /// <exception cref="InvalidDataException">The image metadata is corrupt.</exception>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (buffer.IsEmpty)
        {
            return default;
        }

        long length = Length;
        if (offset >= length)
        {
            buffer.Span.Clear();
            return default;
        }

        if (buffer.Length > length - offset)
        {
            int inside = (int)(length - offset);
            buffer.Span[inside..].Clear();
            buffer = buffer[..inside];
        }

        BlockLimits limits = Limits;
        if (limits.RequestAlignment <= 1 && limits.MemoryAlignment <= 1 && buffer.Length <= limits.MaxTransfer)
        {
            return ReadCoreAsync(offset, buffer, cancellationToken);
        }

        return ReadSlowAsync(offset, buffer, limits, cancellationToken);
    }

    private async ValueTask ReadSlowAsync(long offset, Memory<byte> buffer, BlockLimits limits, CancellationToken cancellationToken)
    {
        int align = Math.Max(1, limits.RequestAlignment);
        if (offset % align == 0 && buffer.Length % align == 0 && Buffers.AlignedBuffer.IsAligned(buffer, limits.MemoryAlignment))
        {
            int maxTransfer = AlignedMaxTransfer(limits);
            while (!buffer.IsEmpty)
            {
                int chunk = Math.Min(buffer.Length, maxTransfer);
                await ReadCoreAsync(offset, buffer[..chunk], cancellationToken).ConfigureAwait(false);
                offset += chunk;
                buffer = buffer[chunk..];
            }

            return;
        }

        // Bounce through an aligned buffer, one aligned window at a time.
        int window = AlignedMaxTransfer(limits);
        using var bounce = new Buffers.AlignedBuffer(window, Math.Max(limits.MemoryAlignment, align));
        while (!buffer.IsEmpty)
        {
            long alignedStart = offset - offset % align;
            int skip = (int)(offset - alignedStart);
            int take = Math.Min(buffer.Length, window - skip);
            int alignedLength = RoundUp(skip + take, align);
            await ReadCoreAsync(alignedStart, bounce.Memory[..alignedLength], cancellationToken).ConfigureAwait(false);
            bounce.Memory.Span.Slice(skip, take).CopyTo(buffer.Span);
            offset += take;
            buffer = buffer[take..];
        }
    }

    // ---------------------------------------------------------------- write

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    /// <exception cref="InvalidOperationException">The node is read-only.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Negative offset, or past the end of a node that cannot grow.</exception>
    /// <exception cref="NotSupportedException">The flags ask for something the format cannot do.</exception>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, data.Length);
        if (data.IsEmpty)
        {
            return default;
        }

        BlockLimits limits = Limits;
        if (limits.RequestAlignment <= 1 && limits.MemoryAlignment <= 1 && data.Length <= limits.MaxTransfer)
        {
            return WriteCoreAsync(offset, data, flags, cancellationToken);
        }

        return WriteSlowAsync(offset, data, flags, limits, cancellationToken);
    }

    private async ValueTask WriteSlowAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, BlockLimits limits, CancellationToken cancellationToken)
    {
        int align = Math.Max(1, limits.RequestAlignment);
        int maxTransfer = AlignedMaxTransfer(limits);
        if (offset % align == 0 && data.Length % align == 0 && Buffers.AlignedBuffer.IsAligned(data, limits.MemoryAlignment))
        {
            while (!data.IsEmpty)
            {
                int chunk = Math.Min(data.Length, maxTransfer);
                await WriteCoreAsync(offset, data[..chunk], flags, cancellationToken).ConfigureAwait(false);
                offset += chunk;
                data = data[chunk..];
            }

            return;
        }

        // Read-modify-write through an aligned bounce buffer. Serialized per node so that two unaligned writes
        // sharing an aligned block cannot lose each other's bytes.
        // TODO: aligned writes do not take this lock, so an aligned write racing an unaligned one over the same
        // block can still be lost; qimg's own callers never issue overlapping concurrent writes.
        SemaphoreSlim gate = LazyInitializer.EnsureInitialized(ref _readModifyWriteLock, () => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var bounce = new Buffers.AlignedBuffer(maxTransfer, Math.Max(limits.MemoryAlignment, align));
            while (!data.IsEmpty)
            {
                long alignedStart = offset - offset % align;
                int skip = (int)(offset - alignedStart);
                int take = Math.Min(data.Length, maxTransfer - skip);
                int alignedLength = RoundUp(skip + take, align);
                Memory<byte> window = bounce.Memory[..alignedLength];
                if (skip != 0 || take != alignedLength)
                {
                    await ReadAsync(alignedStart, window, cancellationToken).ConfigureAwait(false);
                }

                data.Span[..take].CopyTo(window.Span[skip..]);
                await WriteCoreAsync(alignedStart, window, flags, cancellationToken).ConfigureAwait(false);
                offset += take;
                data = data[take..];
            }
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Splits a write in two: does now the part that does not depend on other writes (compressing the data, for a
    /// <see cref="WriteFlags.Compressed"/> write to qcow2), and returns the rest to be committed later. Several writes
    /// can be prepared at once on different threads and committed one by one in the caller's order. Returns null when
    /// the node has nothing to prepare for this write: call <see cref="WriteAsync"/> instead.
    /// </summary>
    /// <exception cref="InvalidOperationException">The node is read-only.</exception>
    public ValueTask<PreparedWrite?> PrepareWriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags = WriteFlags.None, CancellationToken cancellationToken = default)
    {
        CheckWrite(offset, data.Length);
        return data.IsEmpty ? ValueTask.FromResult<PreparedWrite?>(null) : PrepareWriteCoreAsync(offset, data, flags, cancellationToken);
    }

    /// <summary>The driver's half of <see cref="PrepareWriteAsync"/>; the default has nothing to prepare.</summary>
    protected virtual ValueTask<PreparedWrite?> PrepareWriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken) =>
        ValueTask.FromResult<PreparedWrite?>(null);

    /// <summary>
    /// Makes <paramref name="length"/> bytes at <paramref name="offset"/> read as zero, deallocating them when
    /// <see cref="ZeroFlags.MayUnmap"/> allows and the driver can. Without <see cref="ZeroFlags.NoFallback"/>, a
    /// driver that cannot zero efficiently gets explicit zero buffers written instead.
    /// </summary>
    /// <exception cref="NotSupportedException">NoFallback was given and the driver has no efficient zeroing.</exception>
    public async ValueTask WriteZeroesAsync(long offset, long length, ZeroFlags flags = ZeroFlags.None, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckWrite(offset, length);
        if (length == 0)
        {
            return;
        }

        int align = Math.Max(1, Limits.RequestAlignment);
        long head = offset % align == 0 ? 0 : Math.Min(length, align - offset % align);
        if (head != 0)
        {
            await WriteZeroBuffersAsync(offset, head, cancellationToken).ConfigureAwait(false);
            offset += head;
            length -= head;
        }

        long tail = length % align;
        long body = length - tail;
        if (body != 0 && !await TryWriteZeroesCoreAsync(offset, body, flags, cancellationToken).ConfigureAwait(false))
        {
            if ((flags & ZeroFlags.NoFallback) != 0)
            {
                throw new NotSupportedException($"{DriverName}: efficient zero writes are not supported");
            }

            await WriteZeroBuffersAsync(offset, body, cancellationToken).ConfigureAwait(false);
        }

        if (tail != 0)
        {
            await WriteZeroBuffersAsync(offset + body, tail, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask WriteZeroBuffersAsync(long offset, long length, CancellationToken cancellationToken)
    {
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, Buffers.ZeroBuffer.Size);
            await WriteAsync(offset, Buffers.ZeroBuffer.Memory[..chunk], WriteFlags.None, cancellationToken).ConfigureAwait(false);
            offset += chunk;
            length -= chunk;
        }
    }

    /// <summary>
    /// Tells the node that <paramref name="length"/> bytes at <paramref name="offset"/> are no longer needed. What they read
    /// as afterwards is up to the format (zero, or the backing file's data); a node may ignore the request.
    /// </summary>
    public ValueTask DiscardAsync(long offset, long length, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckWrite(offset, 0);
        long end = Math.Min(offset + length, Length);
        if (end <= offset)
        {
            return default;
        }

        return DiscardCoreAsync(offset, end - offset, cancellationToken);
    }

    /// <summary>Makes every completed write durable (and, for formats, writes cached metadata), then flushes the children it writes to.</summary>
    public async ValueTask FlushAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (IsReadOnly)
        {
            return;
        }

        await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
        foreach (BlockChild child in Children)
        {
            if ((child.Role & ChildRole.Cow) == 0 && !child.Node.IsReadOnly)
            {
                await child.Node.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Resizes the node. <paramref name="exact"/> false lets a protocol keep a larger size when shrinking is impossible.</summary>
    /// <exception cref="NotSupportedException">The driver cannot resize.</exception>
    public ValueTask TruncateAsync(long length, PreallocationMode preallocation = PreallocationMode.Off, bool exact = false, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ThrowIfReadOnly();
        return TruncateCoreAsync(length, preallocation, exact, cancellationToken);
    }

    // ---------------------------------------------------------------- block status

    /// <summary>
    /// The status of this node's own layer at <paramref name="offset"/> (QEMU's <c>bdrv_co_block_status</c>):
    /// flags that hold for the returned Length bytes (at most <paramref name="length"/>, never 0 before the end), with
    /// <see cref="BlockStatusFlags.Allocated"/> set when this layer defines the content and
    /// <see cref="BlockStatusFlags.Eof"/> when the answer reaches <see cref="Length"/>. Pass-through answers
    /// (<see cref="BlockStatusFlags.Raw"/>) are resolved by asking the host node, and data in a hole of the host file
    /// is reported as Data|Zero when <paramref name="wantZero"/> is set.
    /// </summary>
    /// <param name="wantZero">True for mapping (precise Zero/Data); false favours long answers and accurate Allocated.</param>
    public async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero = true, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        long total = Length;
        if (offset >= total)
        {
            return new BlockStatus(BlockStatusFlags.Eof, 0);
        }

        if (length <= 0)
        {
            return new BlockStatus(BlockStatusFlags.None, 0);
        }

        length = Math.Min(length, total - offset);
        int align = Math.Max(1, Limits.RequestAlignment);
        long alignedOffset = offset - offset % align;
        long alignedLength = RoundUp(offset + length, align) - alignedOffset;

        BlockStatus answer = await GetBlockStatusCoreAsync(alignedOffset, alignedLength, wantZero, cancellationToken).ConfigureAwait(false);
        if (answer.Length <= 0 || answer.Length > alignedLength)
        {
            throw new InvalidOperationException($"{DriverName}: block status answered {answer.Length} bytes for a {alignedLength}-byte query");
        }

        BlockStatusFlags flags = answer.Flags & ~(BlockStatusFlags.Allocated | BlockStatusFlags.Eof);
        long count = Math.Min(answer.Length - (offset - alignedOffset), length);
        BlockNode? host = answer.HostNode;
        long hostOffset = answer.HostOffset;
        if ((flags & BlockStatusFlags.OffsetValid) != 0)
        {
            hostOffset += offset - alignedOffset;
        }

        if ((flags & BlockStatusFlags.Raw) != 0)
        {
            if (host is null || (flags & BlockStatusFlags.OffsetValid) == 0)
            {
                throw new InvalidOperationException($"{DriverName}: a pass-through block status needs a host node and offset");
            }

            BlockStatus below = await host.GetBlockStatusAsync(hostOffset, count, wantZero, cancellationToken).ConfigureAwait(false);
            // The host's EOF is not ours; recompute it against this node's length below.
            flags = below.Flags & ~BlockStatusFlags.Eof;
            count = below.Length;
            host = below.HostNode;
            hostOffset = below.HostOffset;
            if (count == 0)
            {
                // Reading past the end of the host: reads as zero.
                count = Math.Min(length, total - offset);
                flags = BlockStatusFlags.Zero | BlockStatusFlags.Allocated;
            }
        }
        else
        {
            if ((flags & (BlockStatusFlags.Data | BlockStatusFlags.Zero)) != 0)
            {
                flags |= BlockStatusFlags.Allocated;
            }
            else if (SupportsBacking)
            {
                BlockNode? backing = Backing;
                if (backing is null || (wantZero && offset >= backing.Length))
                {
                    flags |= BlockStatusFlags.Zero;
                }
            }

            if (wantZero && (flags & BlockStatusFlags.Recurse) != 0 && host is not null && host != this
                && (flags & BlockStatusFlags.Data) != 0 && (flags & BlockStatusFlags.Zero) == 0
                && (flags & BlockStatusFlags.OffsetValid) != 0)
            {
                BlockStatus inHost = await host.GetBlockStatusAsync(hostOffset, count, wantZero, cancellationToken).ConfigureAwait(false);
                if (inHost.IsEof && (inHost.Length == 0 || inHost.IsZero))
                {
                    // A format may map data past the end of its file; that reads as zero.
                    flags |= BlockStatusFlags.Zero;
                }
                else
                {
                    count = inHost.Length;
                    flags |= inHost.Flags & BlockStatusFlags.Zero;
                }
            }

            flags &= ~BlockStatusFlags.Recurse;
        }

        if (offset + count == total)
        {
            flags |= BlockStatusFlags.Eof;
        }

        if ((flags & BlockStatusFlags.OffsetValid) == 0)
        {
            host = null;
            hostOffset = 0;
        }

        return new BlockStatus(flags, count, host, hostOffset);
    }

    // ---------------------------------------------------------------- driver hooks

    /// <summary>Reads an in-bounds, aligned, non-empty range; must fill the whole buffer.</summary>
    protected abstract ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes an aligned, non-empty range (in bounds unless <see cref="CanGrow"/>) of a writable node.</summary>
    protected virtual ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{DriverName}: writing is not supported");

    /// <summary>
    /// Zeroes an aligned range efficiently, or returns false when the driver cannot, in which case the base class
    /// writes zero buffers (unless the caller forbade that).
    /// </summary>
    protected virtual ValueTask<bool> TryWriteZeroesCoreAsync(long offset, long length, ZeroFlags flags, CancellationToken cancellationToken) =>
        ValueTask.FromResult(false);

    /// <summary>Discards an in-bounds range; the default ignores the request.</summary>
    protected virtual ValueTask DiscardCoreAsync(long offset, long length, CancellationToken cancellationToken) => default;

    /// <summary>Makes this node's own writes durable; children are flushed by the base class afterwards.</summary>
    protected virtual ValueTask FlushCoreAsync(CancellationToken cancellationToken) => default;

    /// <summary>Resizes the node.</summary>
    protected virtual ValueTask TruncateCoreAsync(long length, PreallocationMode preallocation, bool exact, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"{DriverName}: resizing is not supported");

    /// <summary>
    /// The driver's answer for an aligned, in-bounds, non-empty range: flags among Data, Zero, OffsetValid, Raw and
    /// Recurse (never Allocated or Eof), a Length between 1 and <paramref name="length"/> that is a multiple of the
    /// request alignment (or reaches the end), and the host node and offset when OffsetValid is set. The default says
    /// "all data", with the offset valid in this node for protocols.
    /// </summary>
    protected virtual ValueTask<BlockStatus> GetBlockStatusCoreAsync(long offset, long length, bool wantZero, CancellationToken cancellationToken) =>
        ValueTask.FromResult(IsProtocol
            ? new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, length, this, offset)
            : new BlockStatus(BlockStatusFlags.Data, length));

    // ---------------------------------------------------------------- lifetime and helpers

    protected bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    protected void ThrowIfReadOnly()
    {
        if (IsReadOnly)
        {
            throw new InvalidOperationException($"Cannot write to '{FileName}': the image is open read-only");
        }
    }

    private void CheckWrite(long offset, long length)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ThrowIfReadOnly();
        if (!CanGrow && offset + length > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"Write at {offset}+{length} past the end of '{FileName}' ({Length} bytes)");
        }
    }

    private static int AlignedMaxTransfer(BlockLimits limits)
    {
        int align = Math.Max(1, limits.RequestAlignment);
        int max = Math.Max(limits.MaxTransfer, align);
        return max - max % align;
    }

    private static long RoundUp(long value, long align) => (value + align - 1) / align * align;

    private static int RoundUp(int value, int align) => (value + align - 1) / align * align;

    /// <summary>Releases the node's resources and the children it owns. Does not flush; call <see cref="FlushAsync"/> first.</summary>
    protected virtual ValueTask DisposeCoreAsync() => default;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await DisposeCoreAsync().ConfigureAwait(false);
        _readModifyWriteLock?.Dispose();
        GC.SuppressFinalize(this);
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public override string ToString() => $"{DriverName}:{FileName}";
}
