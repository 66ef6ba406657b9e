using System.Globalization;
using Qimg.Block;
using Qimg.Formats;
using Qimg.Protocols;
using Qimg.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>
/// Write-zeroes (with and without unmap) and discard against qemu-io doing the same operations on an identical file:
/// same contents, same holes (qemu-img map), same allocation.
/// </summary>
public sealed class FileZeroDiscardTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    /// <summary>Operations "zero OFFSET LENGTH", "zero-unmap OFFSET LENGTH", "discard OFFSET LENGTH".</summary>
    public static TheoryData<string, string> Operations => new()
    {
        { "dd 0 1048576", "zero 65536 131072" },
        { "dd 0 1048576", "zero-unmap 65536 131072" },
        { "dd 0 1048576", "discard 65536 131072" },
        { "dd 0 1048576", "zero 1000 5000;zero-unmap 100000 70001;discard 300001 4095" },
        { "truncate 1048576;dd 0 4096", "zero 0 1048576" },
        { "dd 0 1048576", "zero-unmap 0 1048576" },
        { "dd 0 1048576", "discard 0 1048576;zero 4096 4096" },
        { "dd 0 1000000", "zero-unmap 999000 1000;zero 998000 1000" },
    };

    [Theory]
    [MemberData(nameof(Operations))]
    public async Task ZeroAndDiscard_SameResultAsQemuIo(string layout, string operations)
    {
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        FileNodeBlockStatusTests.Build(qemuPath, layout);
        System.IO.File.Copy(qemuPath, path);
        var steps = operations.Split(';').Select(step => step.Split(' ')).Select(parts =>
            (Kind: parts[0], Offset: long.Parse(parts[1], CultureInfo.InvariantCulture), Length: long.Parse(parts[2], CultureInfo.InvariantCulture))).ToList();

        var arguments = new List<string> { "-d", "unmap", "-f", "raw" };
        foreach (var (kind, offset, length) in steps)
        {
            string command = kind switch
            {
                "zero" => "write -q -z",
                "zero-unmap" => "write -q -z -u",
                _ => "discard -q",
            };
            arguments.AddRange(["-c", $"{command} {offset} {length}"]);
        }

        Tools.Check("qemu-io", [.. arguments, qemuPath]);

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw", ReadOnly = false }))
        {
            foreach (var (kind, offset, length) in steps)
            {
                switch (kind)
                {
                    case "zero":
                        await image.WriteZeroesAsync(offset, length);
                        break;
                    case "zero-unmap":
                        await image.WriteZeroesAsync(offset, length, ZeroFlags.MayUnmap);
                        break;
                    default:
                        await image.DiscardAsync(offset, length);
                        break;
                }
            }

            await image.FlushAsync();
        }

        Assert.Equal(System.IO.File.ReadAllBytes(qemuPath), System.IO.File.ReadAllBytes(path));
        Assert.Equal(Tools.QemuMap(qemuPath), Tools.QemuMap(path));
        Assert.Equal(Tools.Stat(qemuPath), Tools.Stat(path));
    }

    [Fact]
    public async Task WriteZeroesNoFallback_OnFile_UsesFallocate()
    {
        string path = _directory.File("qimg.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 65536");
        await using BlockNode file = await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(false, CacheMode.Writeback));

        await file.WriteZeroesAsync(4096, 8192, ZeroFlags.NoFallback);

        byte[] data = System.IO.File.ReadAllBytes(path);
        Assert.All(data[4096..12288], b => Assert.Equal(0, b));
        Assert.Equal(65536, data.Length);
    }

    [Fact]
    public async Task WriteZeroesUnmap_PastEnd_ExtendsTheFileWithAHole()
    {
        string path = _directory.File("qimg.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 4096");
        await using var file = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(false, CacheMode.Writeback));

        await file.WriteZeroesAsync(2048, 1 << 20, ZeroFlags.MayUnmap);

        Assert.Equal(2048L + (1 << 20), file.FileLength);
        Assert.Equal(2048L + (1 << 20), new FileInfo(path).Length);
        Assert.All(System.IO.File.ReadAllBytes(path)[2048..], b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task WriteZeroes_PastEnd_ExtendsTheFile()
    {
        string path = _directory.File("qimg.raw");
        FileNodeBlockStatusTests.Build(path, "dd 0 4096");
        await using var file = (FileNode)await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(false, CacheMode.Writeback));

        await file.WriteZeroesAsync(8192, 65536);

        Assert.Equal(8192L + 65536, file.FileLength);
        Assert.Equal(8192L + 65536, new FileInfo(path).Length);
    }
}
