namespace Qimg.Block;

/// <summary>
/// The cache modes of <c>-t</c>/<c>-T</c>: whether the host page cache is bypassed (O_DIRECT), whether every write
/// is made durable, and whether flushes are done at all.
/// </summary>
public readonly record struct CacheMode(bool Direct, bool WriteThrough, bool NoFlush)
{
    public static CacheMode Writeback { get; } = new(false, false, false);

    /// <summary>Parses qemu's names: none, off, writeback, writethrough, directsync, unsafe.</summary>
    public static bool TryParse(string name, out CacheMode mode)
    {
        switch (name)
        {
            case "none":
            case "off": mode = new(true, false, false); return true;
            case "writeback": mode = new(false, false, false); return true;
            case "writethrough": mode = new(false, true, false); return true;
            case "directsync": mode = new(true, true, false); return true;
            case "unsafe": mode = new(false, false, true); return true;
            default: mode = Writeback; return false;
        }
    }
}
