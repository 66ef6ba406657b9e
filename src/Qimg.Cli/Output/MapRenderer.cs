using System.Globalization;
using Qimg.Operations.Map;

namespace Qimg.Cli.Output;

/// <summary>qemu-img map's two output formats (<c>dump_map_entry</c>).</summary>
internal static class MapRenderer
{
    /// <summary>The header line of the human format.</summary>
    public const string HumanHeader = "Offset          Length          Mapped to       File\n";

    /// <summary>The human line for an extent, or empty for extents the human format does not list (not plain data).</summary>
    public static string ToHuman(in MapEntry entry)
    {
        if (!entry.Data || entry.Zero)
        {
            return string.Empty;
        }

        return CFormat.PadRight(CFormat.HexAlternate(entry.Start), 16) + CFormat.PadRight(CFormat.HexAlternate(entry.Length), 16)
            + CFormat.PadRight(CFormat.HexAlternate(entry.Offset ?? 0), 16) + (entry.FileName ?? string.Empty) + "\n";
    }

    /// <summary>The JSON object for an extent (one line, without separator).</summary>
    public static string ToJson(in MapEntry entry)
    {
        string text = string.Create(CultureInfo.InvariantCulture,
            $"{{ \"start\": {entry.Start}, \"length\": {entry.Length}, \"depth\": {entry.Depth}, \"present\": {Bool(entry.Present)}, \"zero\": {Bool(entry.Zero)}, \"data\": {Bool(entry.Data)}");
        if (entry.Offset is long offset)
        {
            text += string.Create(CultureInfo.InvariantCulture, $", \"offset\": {offset}");
        }

        return text + "}";
    }

    private static string Bool(bool value) => value ? "true" : "false";
}
