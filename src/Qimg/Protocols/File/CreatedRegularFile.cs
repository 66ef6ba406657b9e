using Microsoft.Win32.SafeHandles;
using Qimg.Interop;

namespace Qimg.Protocols.File;

/// <summary>
/// A regular file the file protocol created (or emptied, as QEMU's create does to an existing file), identified by
/// device and inode through the descriptor that created it, and its entry in a directory held open since then.
/// </summary>
/// <remarks>
/// QEMU deletes whatever regular file the name points at when a create fails (it stats the name, following
/// symlinks, then unlinks the name). Here the entry is removed only when, looked up without following symlinks in
/// the same directory, it is still the regular file that was created: a device node, a symlink, or a file put in its
/// place meanwhile is left alone.
/// </remarks>
internal sealed class CreatedRegularFile : CreatedFile
{
    private readonly SafeFileHandle _directory;
    private readonly string _name;
    private readonly Libc.FileIdentity _identity;

    private CreatedRegularFile(SafeFileHandle directory, string name, Libc.FileIdentity identity)
    {
        _directory = directory;
        _name = name;
        _identity = identity;
    }

    /// <summary>
    /// Records the file open as <paramref name="handle"/>, created under <paramref name="path"/> with
    /// <paramref name="directory"/> (an O_PATH descriptor of its directory, owned from now on). Null, and the directory
    /// closed, when the name does not refer to that regular file itself (a symlink, for example): nothing will be removed.
    /// </summary>
    public static CreatedRegularFile? Track(SafeFileHandle directory, string path, SafeFileHandle handle)
    {
        string name = System.IO.Path.GetFileName(path);
        if (name.Length != 0
            && Libc.FStatIdentity(handle, out Libc.FileIdentity created) == 0
            && created.IsRegular
            && Libc.LStatAtIdentity(directory, name, out Libc.FileIdentity entry) == 0
            && entry == created)
        {
            return new CreatedRegularFile(directory, name, created);
        }

        directory.Dispose();
        return null;
    }

    public override void DeleteQuietly()
    {
        if (_directory.IsClosed)
        {
            return;
        }

        // The check and the unlink name the entry in the same directory descriptor; what is left is the window between
        // the two calls, which POSIX offers no way to close for unlink.
        if (Libc.LStatAtIdentity(_directory, _name, out Libc.FileIdentity entry) == 0 && entry == _identity)
        {
            _ = Libc.UnlinkAt(_directory, _name);
        }

        _directory.Dispose();
    }

    public override void Dispose() => _directory.Dispose();
}
