namespace Qimg.Block;

/// <summary>Preallocation of new space (QEMU's <c>PreallocMode</c>); names are the option values.</summary>
public enum PreallocationMode
{
    /// <summary>No preallocation.</summary>
    Off,
    /// <summary>Format metadata only (qcow2: L2 tables and refcounts for every cluster).</summary>
    Metadata,
    /// <summary>Reserve host space with fallocate().</summary>
    Falloc,
    /// <summary>Write zeroes over the whole range.</summary>
    Full,
}

public static class PreallocationModeNames
{
    public static string ToOptionValue(this PreallocationMode mode) => mode switch
    {
        PreallocationMode.Off => "off",
        PreallocationMode.Metadata => "metadata",
        PreallocationMode.Falloc => "falloc",
        PreallocationMode.Full => "full",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    public static bool TryParse(string value, out PreallocationMode mode)
    {
        switch (value)
        {
            case "off": mode = PreallocationMode.Off; return true;
            case "metadata": mode = PreallocationMode.Metadata; return true;
            case "falloc": mode = PreallocationMode.Falloc; return true;
            case "full": mode = PreallocationMode.Full; return true;
            default: mode = PreallocationMode.Off; return false;
        }
    }
}
