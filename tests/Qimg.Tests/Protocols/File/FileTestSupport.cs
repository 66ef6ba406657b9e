using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Qimg.Block;
using Qimg.Interop;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>The result of running an external tool.</summary>
internal readonly record struct ToolResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs qemu-img/qemu-io and shell tools, and reads facts about files the way a test needs them.</summary>
internal static class Tools
{
    public static ToolResult Run(string program, params string[] arguments)
    {
        (int exitCode, string stdout, string stderr) = QemuTools.Run(program, arguments);
        return new ToolResult(exitCode, stdout, stderr);
    }

    /// <summary>Runs a tool that must succeed and returns its stdout.</summary>
    public static string Check(string program, params string[] arguments)
    {
        ToolResult result = Run(program, arguments);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed ({result.ExitCode}): {result.Stderr}");
        }

        return result.Stdout;
    }

    /// <summary>st_size and st_blocks of a file.</summary>
    public static (long Size, long Blocks) Stat(string path)
    {
        if (Libc.Stat(path, out Libc.FileStatus status) != 0)
        {
            throw new IOException($"stat {path} failed");
        }

        return (status.Size, status.Blocks);
    }

    /// <summary>`qemu-img map --output=json` of a file, each entry as a comparable string.</summary>
    public static List<string> QemuMap(string path, string format = "raw", bool direct = false)
    {
        string json = direct
            ? Check("qemu-img", "map", "--output=json", "--image-opts", $"driver={format},file.driver=file,file.filename={path},cache.direct=on")
            : Check("qemu-img", "map", "--output=json", "-f", format, path);
        return ParseMap(json);
    }

    /// <summary>Parses `qemu-img map --output=json` output into comparable strings.</summary>
    public static List<string> ParseMap(string json)
    {
        var entries = new List<string>();
        using JsonDocument document = JsonDocument.Parse(json);
        foreach (JsonElement entry in document.RootElement.EnumerateArray())
        {
            entries.Add(FormatEntry(
                entry.GetProperty("start").GetInt64(),
                entry.GetProperty("length").GetInt64(),
                entry.GetProperty("depth").GetInt64(),
                entry.GetProperty("present").GetBoolean(),
                entry.GetProperty("zero").GetBoolean(),
                entry.GetProperty("data").GetBoolean(),
                entry.TryGetProperty("offset", out JsonElement offset) ? offset.GetInt64() : null));
        }

        return entries;
    }

    /// <summary>The same entries as <see cref="QemuMap"/>, computed from qimg's block status (no backing chain).</summary>
    public static async Task<List<string>> QimgMap(BlockNode image)
    {
        // qemu-img's img_map loop: an empty first entry, merged or dumped as qemu-img does (entry_mergeable).
        var entries = new List<string>();
        long length = image.Length;
        var current = (Start: 0L, Length: 0L, Present: false, Zero: false, Data: false, Offset: (long?)null);
        while (current.Start + current.Length < length)
        {
            long position = current.Start + current.Length;
            BlockStatus status = await image.GetBlockStatusAsync(position, length - position);
            Assert.True(status.Length > 0, $"empty block status at {position}");
            var next = (Start: position, Length: status.Length, Present: status.IsAllocated, Zero: status.IsZero, Data: status.IsData,
                Offset: status.IsOffsetValid ? status.HostOffset : (long?)null);
            if (current.Length > 0 && current.Present == next.Present && current.Zero == next.Zero && current.Data == next.Data
                && current.Offset.HasValue == next.Offset.HasValue && (current.Offset is null || current.Offset + current.Length == next.Offset))
            {
                current.Length += next.Length;
                continue;
            }

            if (current.Length > 0)
            {
                entries.Add(FormatEntry(current.Start, current.Length, 0, current.Present, current.Zero, current.Data, current.Offset));
            }

            current = next;
        }

        entries.Add(FormatEntry(current.Start, current.Length, 0, current.Present, current.Zero, current.Data, current.Offset));
        return entries;
    }

    private static string FormatEntry(long start, long length, long depth, bool present, bool zero, bool data, long? offset)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"start={start} length={length} depth={depth} present={present} zero={zero} data={data}");
        if (offset is long value)
        {
            text.Append(CultureInfo.InvariantCulture, $" offset={value}");
        }

        return text.ToString();
    }

    /// <summary>The OFD lock bytes held on <paramref name="path"/> (from /proc/locks), sorted.</summary>
    public static List<long> LockedBytes(string path)
    {
        if (Libc.Stat(path, out _) != 0)
        {
            throw new IOException($"stat {path} failed");
        }

        string inode = Check("stat", "-c", "%i", path).Trim();
        var bytes = new List<long>();
        foreach (string line in System.IO.File.ReadAllLines("/proc/locks"))
        {
            // "1: OFDLCK ADVISORY  READ -1 fe:00:11657999 100 100"
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 8 && fields[1] == "OFDLCK" && fields[5].EndsWith(":" + inode, StringComparison.Ordinal))
            {
                long first = long.Parse(fields[6], CultureInfo.InvariantCulture);
                long last = long.Parse(fields[7], CultureInfo.InvariantCulture);
                for (long b = first; b <= last; b++)
                {
                    bytes.Add(b);
                }
            }
        }

        bytes.Sort();
        return bytes;
    }
}

/// <summary>A background qemu-io (or qemu-nbd) process holding an image open, killed on dispose.</summary>
internal sealed class HeldImage : IDisposable
{
    private readonly Process _process;

    private HeldImage(Process process)
    {
        _process = process;
    }

    /// <summary>Starts `qemu-io ARGS -c "sleep 600000" FILE` and waits until its locks are visible in /proc/locks.</summary>
    public static HeldImage Start(string path, params string[] arguments) => StartWithDevice(path, path, arguments);

    /// <summary>As <see cref="Start"/>, with the qemu-io device argument given separately (an --image-opts string).</summary>
    public static HeldImage StartWithDevice(string path, string device, params string[] arguments)
    {
        int before = Tools.LockedBytes(path).Count;
        var start = new ProcessStartInfo("qemu-io")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("sleep 600000");
        start.ArgumentList.Add(device);
        Process process = Process.Start(start) ?? throw new InvalidOperationException("Could not start qemu-io");
        var held = new HeldImage(process);
        var clock = Stopwatch.StartNew();
        while (Tools.LockedBytes(path).Count <= before)
        {
            if (process.HasExited)
            {
                string error = process.StandardError.ReadToEnd();
                held.Dispose();
                throw new InvalidOperationException($"qemu-io exited early: {error}");
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(20))
            {
                held.Dispose();
                throw new TimeoutException("qemu-io did not lock the image");
            }

            Thread.Sleep(20);
        }

        // QEMU takes its lock bytes one fcntl call at a time, and the backing files' after the image's: wait until
        // what is locked has not changed for 100 ms, so callers never see half of it.
        List<long> seen = Tools.LockedBytes(path);
        for (int unchanged = 0; unchanged < 5 && clock.Elapsed < TimeSpan.FromSeconds(20);)
        {
            Thread.Sleep(20);
            List<long> now = Tools.LockedBytes(path);
            unchanged = now.SequenceEqual(seen) ? unchanged + 1 : 0;
            seen = now;
        }

        return held;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        finally
        {
            _process.Dispose();
        }
    }
}
