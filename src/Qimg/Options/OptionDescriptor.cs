namespace Qimg.Options;

/// <summary>The value type of a create or open option (QEMU's <c>QemuOptType</c>).</summary>
public enum OptionType
{
    String,
    Bool,
    Number,
    Size,
}

/// <summary>
/// One option a format or protocol accepts: the entry behind <c>-o name=value</c> and its line in <c>-o help</c>.
/// </summary>
/// <param name="Name">The option key as users type it ("cluster_size").</param>
/// <param name="Type">How the value is parsed.</param>
/// <param name="Help">The help text printed by <c>-o help</c>.</param>
/// <param name="DefaultValue">The default as QEMU prints it in the "Formatting" line, or null when there is none.</param>
public sealed record OptionDescriptor(string Name, OptionType Type, string Help, string? DefaultValue = null)
{
    /// <summary>The "&lt;type&gt;" hint of <c>-o help</c>.</summary>
    public string TypeHint => Type switch
    {
        OptionType.String => "str",
        OptionType.Bool => "bool (on/off)",
        OptionType.Number => "num",
        OptionType.Size => "size",
        _ => "?",
    };
}
