using System.Globalization;
using System.Text;
using System.Text.Json;
using Qimg.Block;
using Qimg.Formats;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>Helpers for the qcow2 tests: opening, whole-image reads, map rendering and info rendering.</summary>
internal static class Qcow2TestSupport
{
    public static ValueTask<FormatNode> OpenAsync(string path, bool readOnly = true, Action<string>? warning = null) =>
        DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = readOnly, Warning = warning });

    /// <summary>Reads the whole guest image through qimg.</summary>
    public static async Task<byte[]> ReadAllAsync(BlockNode node, int chunk = 3 << 20)
    {
        byte[] all = new byte[node.Length];
        for (long offset = 0; offset < all.Length; offset += chunk)
        {
            int length = (int)Math.Min(chunk, all.Length - offset);
            await node.ReadAsync(offset, all.AsMemory((int)offset, length));
        }

        return all;
    }

    /// <summary>The guest content as qemu-img sees it (converted to raw).</summary>
    public static byte[] ReadAllWithQemu(TestDirectory dir, string image)
    {
        string raw = dir.File("reference-" + Guid.NewGuid().ToString("N") + ".raw");
        QemuTools.Img("convert", "-U", "-O", "raw", image, raw);
        byte[] bytes = System.IO.File.ReadAllBytes(raw);
        System.IO.File.Delete(raw);
        return bytes;
    }

    public static void AssertSameBytes(byte[] expected, byte[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        int index = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(index == expected.Length, $"First difference at byte {index}");
    }

    /// <summary>
    /// qemu-img map's entries computed from qimg's block status (qemu-img's get_block_status and merge logic), one line
    /// per entry: "start length depth present zero data offset".
    /// </summary>
    public static async Task<List<string>> MapAsync(BlockNode top)
    {
        var entries = new List<MapEntry>();
        long length = top.Length;
        long offset = 0;
        while (offset < length)
        {
            long n = Math.Min(1L << 30, length - offset);
            MapEntry next = await GetEntryAsync(top, offset, n);
            if (entries.Count > 0 && Mergeable(entries[^1], next))
            {
                entries[^1] = entries[^1] with { Length = entries[^1].Length + next.Length };
            }
            else
            {
                entries.Add(next);
            }

            offset += next.Length;
        }

        return entries.ConvertAll(e => e.ToString());
    }

    private static async Task<MapEntry> GetEntryAsync(BlockNode top, long offset, long bytes)
    {
        int depth = 0;
        BlockNode? node = top;
        BlockStatus status;
        while (true)
        {
            status = await node.GetBlockStatusAsync(offset, bytes, true);
            Assert.True(status.Length > 0);
            bytes = status.Length;
            if ((status.Flags & (BlockStatusFlags.Zero | BlockStatusFlags.Data)) != 0)
            {
                break;
            }

            node = node.Backing;
            if (node is null)
            {
                status = new BlockStatus(BlockStatusFlags.None, bytes);
                break;
            }

            depth++;
        }

        return new MapEntry(offset, bytes, depth, status.IsAllocated, status.IsZero, status.IsData, status.IsOffsetValid ? status.HostOffset : null, status.HostNode?.FileName);
    }

    private static bool Mergeable(MapEntry current, MapEntry next) =>
        current.Length != 0 && current.Zero == next.Zero && current.Data == next.Data && current.Depth == next.Depth
        && current.Present == next.Present && current.File == next.File && (current.Offset is null) == (next.Offset is null)
        && (current.Offset is null || current.Offset + current.Length == next.Offset);

    /// <summary>The entries of <c>qemu-img map --output=json</c>, in the same line format.</summary>
    public static List<string> MapWithQemu(string image)
    {
        string json = QemuTools.Img("map", "--output=json", image);
        using JsonDocument document = JsonDocument.Parse(json);
        var lines = new List<string>();
        foreach (JsonElement e in document.RootElement.EnumerateArray())
        {
            long? offset = e.TryGetProperty("offset", out JsonElement o) ? o.GetInt64() : null;
            lines.Add(new MapEntry(
                e.GetProperty("start").GetInt64(),
                e.GetProperty("length").GetInt64(),
                e.GetProperty("depth").GetInt32(),
                e.GetProperty("present").GetBoolean(),
                e.GetProperty("zero").GetBoolean(),
                e.GetProperty("data").GetBoolean(),
                offset,
                null).ToString());
        }

        return lines;
    }

    public static void AssertMapMatches(string image, List<string> actual)
    {
        List<string> expected = MapWithQemu(image);
        Assert.Equal(string.Join('\n', expected), string.Join('\n', actual));
    }

    /// <summary>Renders an info value as QEMU's JSON writer does (compact, keys in order) for comparisons.</summary>
    public static string ToJson(object value)
    {
        var text = new StringBuilder();
        Write(text, value);
        return text.ToString();
    }

    private static void Write(StringBuilder text, object value)
    {
        switch (value)
        {
            case InfoObject o:
                text.Append('{');
                bool first = true;
                foreach (KeyValuePair<string, object> pair in o)
                {
                    text.Append(first ? "" : ",").Append('"').Append(pair.Key).Append("\":");
                    Write(text, pair.Value);
                    first = false;
                }

                text.Append('}');
                break;
            case InfoList l:
                text.Append('[');
                bool firstItem = true;
                foreach (object item in l)
                {
                    text.Append(firstItem ? "" : ",");
                    Write(text, item);
                    firstItem = false;
                }

                text.Append(']');
                break;
            case string s:
                text.Append(JsonSerializer.Serialize(s, JsonContext.Default.String));
                break;
            case bool b:
                text.Append(b ? "true" : "false");
                break;
            case long n:
                text.Append(n.ToString(CultureInfo.InvariantCulture));
                break;
            case ulong u:
                text.Append(u.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                throw new InvalidOperationException(value.GetType().Name);
        }
    }

    /// <summary>Re-serializes a JSON element compactly (key order kept) for comparisons.</summary>
    public static string Compact(JsonElement element) => JsonSerializer.Serialize(element, JsonContext.Default.JsonElement);

    private sealed record MapEntry(long Start, long Length, int Depth, bool Present, bool Zero, bool Data, long? Offset, string? File)
    {
        public override string ToString() =>
            $"{Start} {Length} {Depth} {Present} {Zero} {Data} {(Offset is long o ? o.ToString(CultureInfo.InvariantCulture) : "-")}";
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
[System.Text.Json.Serialization.JsonSerializable(typeof(JsonElement))]
internal sealed partial class JsonContext : System.Text.Json.Serialization.JsonSerializerContext
{
}
