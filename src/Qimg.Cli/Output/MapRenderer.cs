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

    /// <summary>
    /// Writes the JSON object for an extent (one line), followed by ",\n" unless it is the last. Formats into a stack
    /// buffer: map writes one per extent, hundreds of thousands for a fragmented image, and a string each cost more
    /// (allocation and collection) than everything else qimg does per extent.
    /// </summary>
    public static void WriteJson(TextWriter writer, in MapEntry entry, bool last)
    {
        Span<char> buffer = stackalloc char[256];
        bool ok = entry.Offset is long offset
            ? buffer.TryWrite(CultureInfo.InvariantCulture,
                $"{{ \"start\": {entry.Start}, \"length\": {entry.Length}, \"depth\": {entry.Depth}, \"present\": {Bool(entry.Present)}, \"zero\": {Bool(entry.Zero)}, \"data\": {Bool(entry.Data)}, \"offset\": {offset}}}{(last ? "" : ",\n")}",
                out int written)
            : buffer.TryWrite(CultureInfo.InvariantCulture,
                $"{{ \"start\": {entry.Start}, \"length\": {entry.Length}, \"depth\": {entry.Depth}, \"present\": {Bool(entry.Present)}, \"zero\": {Bool(entry.Zero)}, \"data\": {Bool(entry.Data)}}}{(last ? "" : ",\n")}",
                out written);
        if (!ok)
        {
            // Cannot happen (at most about 200 characters); fail loudly rather than print a truncated line.
            throw new InvalidOperationException("map entry does not fit its buffer");
        }

        writer.Write(buffer[..written]);
    }

    private static string Bool(bool value) => value ? "true" : "false";
}
