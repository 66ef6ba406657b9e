namespace Qimg.Formats;

/// <summary>What a check may repair (QEMU's <c>BdrvCheckMode</c>; <c>check -r leaks</c> and <c>-r all</c>).</summary>
[Flags]
public enum RepairMode
{
    /// <summary>Only look; the image is not modified.</summary>
    None = 0,

    /// <summary>Free leaked clusters (refcounts higher than the references).</summary>
    Leaks = 1,

    /// <summary>Fix refcounts that are too low, copied flags and broken refcount structures.</summary>
    Errors = 2,

    /// <summary>Both: what <c>qemu-img check -r all</c> and the repair of a dirty image do.</summary>
    All = Leaks | Errors,
}
