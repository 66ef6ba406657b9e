using System.Globalization;
using Qimg.Block;
using Qimg.Formats;
using Qimg.Interop;
using Qimg.Protocols;
using Qimg.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>
/// cache=none/directsync (O_DIRECT): QEMU's alignment probing, unaligned requests bounced by the base class, and the
/// resulting files compared with qemu-io -t none doing the same writes.
/// </summary>
public sealed class FileDirectIoTests : IDisposable
{
    private static readonly CacheMode None = new(Direct: true, WriteThrough: false, NoFlush: false);

    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static int OpenFlags(FileNode node)
    {
        string fdinfo = System.IO.File.ReadAllText($"/proc/self/fdinfo/{node.Handle.DangerousGetHandle()}");
        string flags = fdinfo.Split('\n').First(line => line.StartsWith("flags:", StringComparison.Ordinal))[6..].Trim();
        return Convert.ToInt32(flags, 8);
    }

    [Fact]
    public async Task Open_CacheNone_UsesODirectAndAWorkingAlignment()
    {
        string path = _directory.File("data.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 65536");

        await using var node = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(true, None));

        Assert.NotEqual(0, OpenFlags(node) & Libc.O_DIRECT);
        int align = node.Limits.RequestAlignment;
        Assert.True(align >= 1 && (align & (align - 1)) == 0 && align <= 4096, $"alignment {align}");
        Assert.True(node.Limits.MemoryAlignment >= 1);
        if (align > 1)
        {
            // The probed alignment is the smallest that works: half of it must be refused by the kernel.
            using var buffer = new Qimg.Buffers.AlignedBuffer(8192, 4096);
            Assert.Equal(align, Libc.PRead(node.Handle, buffer.GetSpan()[..align], 0));
            Assert.Equal(-Libc.EINVAL, Libc.PRead(node.Handle, buffer.GetSpan()[..(align / 2)], 0));
        }
    }

    [Fact]
    public async Task Open_CacheNoneOnEmptyFile_FallsBackToTheSafeMaximumLikeQemu()
    {
        // Reads from an empty file succeed at any alignment, so QEMU's probe learns nothing and uses MAX(4096, page size).
        string path = _directory.File("empty.raw");
        System.IO.File.WriteAllBytes(path, []);

        await using var node = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(false, None));

        int expected = Math.Max(4096, Environment.SystemPageSize);
        Assert.Equal(expected, node.Limits.RequestAlignment);
        Assert.Equal(expected, node.Limits.MemoryAlignment);
    }

    [Fact]
    public async Task Open_Buffered_NoODirectNoAlignment()
    {
        string path = _directory.File("data.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 4096");

        await using var node = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(true, CacheMode.Writeback));

        Assert.Equal(0, OpenFlags(node) & Libc.O_DIRECT);
        Assert.Equal(1, node.Limits.RequestAlignment);
    }

    /// <summary>Pattern writes "offset:length:pattern", applied by qemu-io -t MODE and by qimg in the same mode.</summary>
    public static TheoryData<string, string> WriteSequences => new()
    {
        { "none", "0:512:0x11" },
        { "none", "1:1:0x22;1000:100:0x33;4095:2:0x44;70000:12345:0x55" },
        { "none", "100:199000:0x66;150:3:0x77;199000:1000:0x88" },
        { "directsync", "7:9000:0x99;65536:1:0xaa;8192:8192:0xbb" },
        { "none", "199999:100:0xcc" },
        { "writethrough", "199999:100:0xcc;3:5:0xdd" },
    };

    [Theory]
    [MemberData(nameof(WriteSequences))]
    public async Task UnalignedWrites_SameFileAsQemuIo(string mode, string writes)
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        FileNodeBlockStatusTests.Build(qemuPath, "dd 0 8192;truncate 200000");
        System.IO.File.Copy(qemuPath, path);
        var steps = writes.Split(';').Select(step => step.Split(':')).Select(parts =>
            (Offset: long.Parse(parts[0], CultureInfo.InvariantCulture), Length: int.Parse(parts[1], CultureInfo.InvariantCulture),
             Pattern: Convert.ToByte(parts[2], 16))).ToList();

        var arguments = new List<string> { "-t", mode, "-f", "raw" };
        foreach (var (offset, length, pattern) in steps)
        {
            arguments.AddRange(["-c", $"write -q -P 0x{pattern:x2} {offset} {length}"]);
        }

        Tools.Check("qemu-io", [.. arguments, qemuPath]);

        Assert.True(CacheMode.TryParse(mode, out CacheMode cache));
        var options = new ImageOpenOptions { Format = "raw", ReadOnly = false, Cache = cache };
        await using (FormatNode image = await DiskImage.OpenAsync(path, options))
        {
            foreach (var (offset, length, pattern) in steps)
            {
                byte[] data = Enumerable.Repeat(pattern, length).ToArray();
                await image.WriteAsync(offset, data);
                byte[] back = new byte[length];
                await image.ReadAsync(offset, back);
                Assert.Equal(data, back);
            }

            await image.FlushAsync();
        }

        Assert.Equal(System.IO.File.ReadAllBytes(qemuPath), System.IO.File.ReadAllBytes(path));
    }

    [Fact]
    public async Task UnalignedReads_MatchBufferedReads()
    {
        string path = _directory.File("data.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 300001");
        byte[] expected = System.IO.File.ReadAllBytes(path);
        var random = new Random(1234);

        await using var node = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(true, None));
        for (int i = 0; i < 200; i++)
        {
            int offset = random.Next(0, expected.Length + 2000);
            int length = random.Next(1, 70000);
            byte[] buffer = new byte[length];
            await node.ReadAsync(offset, buffer);

            int inside = Math.Clamp(expected.Length - offset, 0, length);
            if (offset < node.Length)
            {
                Assert.Equal(expected.AsSpan(offset, inside).ToArray(), buffer[..inside]);
            }

            Assert.All(buffer[inside..], b => Assert.Equal(0, b));
        }
    }

    [Fact]
    public async Task ReadAcrossEndOfFile_ShortDirectReadIsEndOfFile()
    {
        // A file whose size is not a multiple of the alignment: the last aligned read comes back short.
        string path = _directory.File("odd.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 5000");
        byte[] expected = System.IO.File.ReadAllBytes(path);

        await using var node = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(true, None));
        byte[] buffer = new byte[8192];
        await node.ReadAsync(0, buffer);

        Assert.Equal(expected, buffer[..5000]);
        Assert.All(buffer[5000..], b => Assert.Equal(0, b));
    }
}
