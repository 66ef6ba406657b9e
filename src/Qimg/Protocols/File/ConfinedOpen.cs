using Microsoft.Win32.SafeHandles;
using Qimg.Interop;

namespace Qimg.Protocols.File;

/// <summary>
/// Opens a file so that resolving its name cannot leave a directory: the name is looked up and opened in one step
/// relative to a descriptor of the directory, so the file opened is the one the confinement allowed, even when links
/// inside the directory change during the open.
/// </summary>
/// <remarks>
/// The kernel does it with <c>openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)</c> (Linux 5.6 and later). Where
/// openat2 is missing (ENOSYS), the name is walked one component at a time with <c>openat(O_NOFOLLOW)</c>, holding a
/// descriptor for each directory entered: a link met on the way is read through the descriptor that found it and its
/// text resolved in place, as the kernel would; ".." steps back to the descriptor held for the parent, so it never
/// leaves the starting directory, and an absolute link or a ".." at the top fails with EXDEV, as RESOLVE_BENEATH does.
/// Link texts are resolved as names, so /proc "magic" links never jump anywhere.
/// </remarks>
internal static class ConfinedOpen
{
    /// <summary>Linux's limit on links followed in one lookup (MAXSYMLINKS).</summary>
    private const int MaxLinks = 40;

    private const int S_IFLNK = 0xA000;

    private static volatile bool s_openAt2Missing;

    /// <summary>Tests set this to exercise the component walk on kernels that have openat2.</summary>
    internal static bool ForceWalk { get; set; }

    /// <summary>
    /// Opens <paramref name="relativePath"/> beneath <paramref name="directory"/> (a descriptor of the directory) with
    /// open(2) <paramref name="flags"/>. Returns the descriptor, or a negated errno; EXDEV means the name resolves outside.
    /// </summary>
    public static int Open(SafeFileHandle directory, string relativePath, int flags)
    {
        if (!ForceWalk && !s_openAt2Missing)
        {
            int fd = Libc.OpenAt2(directory, relativePath, flags, Libc.RESOLVE_BENEATH | Libc.RESOLVE_NO_MAGICLINKS);
            if (fd >= 0)
            {
                return fd;
            }

            int errno = Libc.LastError;
            if (errno != Libc.ENOSYS)
            {
                return -errno;
            }

            s_openAt2Missing = true;
        }

        return Walk(directory, relativePath, flags);
    }

    /// <summary>
    /// <paramref name="path"/> relative to <paramref name="directory"/> when it names something beneath it (as typed,
    /// or through the real paths of the directory and of the file's parent), else null. Only finds the name to open:
    /// the confinement itself is the open (<see cref="Open"/>).
    /// </summary>
    public static string? RelativeBeneath(string directory, string path)
    {
        string root = Path.GetFullPath(directory).TrimEnd('/');
        string absolute = path.StartsWith('/') ? path : Environment.CurrentDirectory.TrimEnd('/') + "/" + path;
        if (Strip(root, absolute) is string typed)
        {
            return typed;
        }

        // The image may have been opened through a link to the directory (or the directory given through a link).
        string full = Path.GetFullPath(absolute);
        string? realRoot = Libc.RealPath(root.Length == 0 ? "/" : root);
        string? realParent = Path.GetDirectoryName(full) is string parent ? Libc.RealPath(parent) : null;
        if (realRoot is null || realParent is null)
        {
            return null;
        }

        return Strip(realRoot.TrimEnd('/'), realParent.TrimEnd('/') + "/" + Path.GetFileName(full));
    }

    private static string? Strip(string root, string absolute)
    {
        if (absolute == root || absolute == root + "/")
        {
            return ".";
        }

        return absolute.StartsWith(root + "/", StringComparison.Ordinal) ? absolute[(root.Length + 1)..] : null;
    }

    private static int Walk(SafeFileHandle root, string path, int flags)
    {
        var pending = new Stack<string>();
        Push(pending, path);
        var entered = new List<SafeFileHandle>();
        int links = 0;
        try
        {
            while (pending.Count > 0)
            {
                string name = pending.Pop();
                SafeFileHandle current = entered.Count == 0 ? root : entered[^1];
                if (name == ".")
                {
                    continue;
                }

                if (name == "..")
                {
                    if (entered.Count == 0)
                    {
                        return -Libc.EXDEV;
                    }

                    entered[^1].Dispose();
                    entered.RemoveAt(entered.Count - 1);
                    continue;
                }

                string? target;
                if (pending.Count == 0)
                {
                    // The last component: open it for real, refusing to follow a link in the same call.
                    int fd = Libc.OpenAt(current, name, flags | Libc.O_NOFOLLOW);
                    if (fd >= 0)
                    {
                        return fd;
                    }

                    int errno = Libc.LastError;
                    if (errno != Libc.ELOOP)
                    {
                        return -errno;
                    }

                    target = Libc.ReadLinkAt(current, name);
                    if (target is null)
                    {
                        int readError = Libc.LastError;
                        if (readError != Libc.EINVAL)
                        {
                            return -readError;
                        }

                        // Replaced by a non-link since the open: look the name up again (bounded like links).
                        if (++links > MaxLinks)
                        {
                            return -Libc.ELOOP;
                        }

                        pending.Push(name);
                        continue;
                    }
                }
                else
                {
                    int fd = Libc.OpenAt(current, name, Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC);
                    if (fd < 0)
                    {
                        return -Libc.LastError;
                    }

                    var handle = new SafeFileHandle(fd, ownsHandle: true);
                    if (Libc.FStat(handle, out Libc.FileStatus status) is int statError and not 0)
                    {
                        handle.Dispose();
                        return -statError;
                    }

                    if (status.IsDirectory)
                    {
                        entered.Add(handle);
                        continue;
                    }

                    if (status.Type != S_IFLNK)
                    {
                        handle.Dispose();
                        return -Libc.ENOTDIR;
                    }

                    // Read the link this descriptor found, not whatever the name points at by now.
                    target = Libc.ReadLinkAt(handle, string.Empty);
                    int readError = Libc.LastError;
                    handle.Dispose();
                    if (target is null)
                    {
                        return -readError;
                    }
                }

                if (++links > MaxLinks)
                {
                    return -Libc.ELOOP;
                }

                if (target.StartsWith('/'))
                {
                    return -Libc.EXDEV;
                }

                Push(pending, target);
            }

            // The name ended in "." or "..": open the directory reached.
            int last = Libc.OpenAt(entered.Count == 0 ? root : entered[^1], ".", flags);
            return last >= 0 ? last : -Libc.LastError;
        }
        finally
        {
            foreach (SafeFileHandle handle in entered)
            {
                handle.Dispose();
            }
        }
    }

    /// <summary>Pushes the components of <paramref name="path"/> so that the first is popped first.</summary>
    private static void Push(Stack<string> pending, string path)
    {
        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (int i = parts.Length - 1; i >= 0; i--)
        {
            pending.Push(parts[i]);
        }
    }
}
