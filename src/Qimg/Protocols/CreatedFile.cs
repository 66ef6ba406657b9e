namespace Qimg.Protocols;

/// <summary>
/// What a protocol's create made, kept so that a format whose creation fails afterwards can remove it again (QEMU's
/// <c>bdrv_co_delete_file_noerr</c>). Only the protocol knows what is safe to remove: the file protocol removes a
/// regular file only while its name still refers to the very file it created.
/// </summary>
internal abstract class CreatedFile : IDisposable
{
    /// <summary>Removes what was created, if that is still safe; failures are ignored (the creation error is what counts).</summary>
    public abstract void DeleteQuietly();

    public abstract void Dispose();
}
