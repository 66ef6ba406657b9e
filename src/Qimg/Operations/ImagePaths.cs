namespace Qimg.Operations;

/// <summary>QEMU's rules for file names that may carry a protocol prefix ("nbd:…", "json:…") and for relative backing names.</summary>
public static class ImagePaths
{
    /// <summary>True when <paramref name="path"/> starts with "&lt;protocol&gt;:" (a ':' before any '/'; QEMU's <c>path_has_protocol</c>).</summary>
    public static bool HasProtocol(string path) => ProtocolOf(path) is not null;

    /// <summary>The "&lt;protocol&gt;" of a "&lt;protocol&gt;:…" name, or null.</summary>
    public static string? ProtocolOf(string path)
    {
        int index = path.AsSpan().IndexOfAny(':', '/');
        return index >= 0 && path[index] == ':' ? path[..index] : null;
    }

    /// <summary>QEMU's <c>path_is_absolute</c> on POSIX.</summary>
    public static bool IsAbsolute(string path) => path.StartsWith('/');

    /// <summary>
    /// QEMU's <c>path_combine</c>: <paramref name="fileName"/> taken relative to the directory of
    /// <paramref name="basePath"/> (keeping a protocol prefix of the base), or unchanged when absolute.
    /// </summary>
    public static string Combine(string basePath, string fileName)
    {
        if (IsAbsolute(fileName))
        {
            return fileName;
        }

        int start = 0;
        if (ProtocolOf(basePath) is string protocol)
        {
            start = protocol.Length + 1;
        }

        int slash = basePath.LastIndexOf('/');
        int end = Math.Max(start, slash + 1);
        return basePath[..end] + fileName;
    }

    /// <summary>
    /// The name to open a backing file <paramref name="backing"/> named by the image <paramref name="imageFileName"/>
    /// (QEMU's <c>bdrv_get_full_backing_filename_from_filename</c>): absolute and protocol names as they are, others
    /// relative to the image; null for an empty name or when the image has no directory to be relative to (json:).
    /// </summary>
    public static string? FullBackingFileName(string imageFileName, string backing)
    {
        if (backing.Length == 0)
        {
            return null;
        }

        if (HasProtocol(backing) || IsAbsolute(backing))
        {
            return backing;
        }

        if (imageFileName.Length == 0 || imageFileName.StartsWith("json:", StringComparison.Ordinal))
        {
            return null;
        }

        return Combine(imageFileName, backing);
    }
}
