namespace Qimg.Block;

/// <summary>What a child node is to its parent (QEMU's <c>BdrvChildRole</c>, reduced to what qimg uses).</summary>
[Flags]
public enum ChildRole
{
    None = 0,
    /// <summary>Holds guest data.</summary>
    Data = 1,
    /// <summary>Holds the parent's metadata.</summary>
    Metadata = 2,
    /// <summary>The copy-on-write source (a backing file).</summary>
    Cow = 4,
    /// <summary>The primary child ("file").</summary>
    Primary = 8,
}

/// <summary>An edge of the node graph: the child and its name and role as QEMU would show them.</summary>
public readonly record struct BlockChild(string Name, BlockNode Node, ChildRole Role);
