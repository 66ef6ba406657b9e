namespace Qimg.Block;

/// <summary>
/// The second half of a write split by <see cref="BlockNode.PrepareWriteAsync"/>: the expensive, independent work
/// (compressing, for qcow2) is done; committing allocates and writes, and may be done in whatever order the caller
/// needs (convert commits in guest order so that the target's layout is qemu-img's). Dispose returns the buffers;
/// a prepared write that is disposed without being committed writes nothing.
/// </summary>
public abstract class PreparedWrite : IDisposable
{
    /// <summary>Performs the write.</summary>
    public abstract ValueTask CommitAsync(CancellationToken cancellationToken = default);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
