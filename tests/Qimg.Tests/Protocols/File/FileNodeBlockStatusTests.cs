using Qimg.Block;
using Qimg.Formats;
using Qimg.Protocols;
using Qimg.Protocols.File;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>Block status of sparse files (holes, data, partial sectors at EOF) against `qemu-img map --output=json`.</summary>
public sealed class FileNodeBlockStatusTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    /// <summary>Layouts as shell steps: "truncate SIZE", "dd OFFSET LENGTH" (data), "fallocate OFFSET LENGTH", "punch OFFSET LENGTH".</summary>
    public static TheoryData<string, string> Layouts => new()
    {
        { "empty", "truncate 0" },
        { "all-hole", "truncate 1048576" },
        { "all-data", "dd 0 1048576" },
        { "data-in-middle", "truncate 1048576;dd 65536 65536" },
        { "data-at-start-and-end", "truncate 2097152;dd 0 4096;dd 2093056 4096" },
        { "partial-sector-at-eof", "truncate 1048676;dd 1048576 100" },
        { "partial-sector-data-whole-file", "dd 0 1000" },
        { "tiny-file", "dd 0 1" },
        { "odd-size-trailing-hole", "truncate 1049000;dd 0 4096" },
        { "fallocated-unwritten", "truncate 1048576;fallocate 131072 262144;dd 0 512" },
        { "punched", "dd 0 1048576;punch 65536 131072;punch 524288 4096" },
        { "many-extents", "truncate 4194304;dd 0 4096;dd 65536 4096;dd 131072 65536;dd 1048576 8192;dd 4190208 4096" },
        { "data-past-rounded-length", "truncate 1000;dd 512 100" },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task BlockStatus_SparseFile_MatchesQemuImgMap(string name, string steps)
    {
        string path = _directory.File(name + ".img");
        Build(path, steps);

        List<string> expected = Tools.QemuMap(path);
        await using FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { Format = "raw" });
        List<string> actual = await Tools.QimgMap(image);

        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task BlockStatus_SparseFileWithDirectIo_MatchesQemuImgMap(string name, string steps)
    {
        string path = _directory.File(name + ".img");
        Build(path, steps);

        List<string> expected = Tools.QemuMap(path, direct: true);
        var options = new ImageOpenOptions { Format = "raw", Cache = new CacheMode(true, false, false) };
        await using FormatNode image = await DiskImage.OpenAsync(path, options);
        List<string> actual = await Tools.QimgMap(image);

        Assert.Equal(expected, actual);
    }

    [Fact]
    public async Task BlockStatus_WithoutWantZero_ReportsDataEverywhere()
    {
        string path = _directory.File("hole.img");
        Build(path, "truncate 1048576;dd 65536 4096");
        await using BlockNode file = await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(true, CacheMode.Writeback));

        BlockStatus status = await file.GetBlockStatusAsync(0, file.Length, wantZero: false);

        Assert.Equal(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated | BlockStatusFlags.Eof, status.Flags);
        Assert.Equal(file.Length, status.Length);
        Assert.Same(file, status.HostNode);
    }

    [Fact]
    public async Task BlockStatus_HoleThenData_ReportsExactBoundaries()
    {
        string path = _directory.File("boundaries.img");
        Build(path, "truncate 1048576;dd 65536 4096");
        await using BlockNode file = await FileProtocol.Instance.OpenAsync(path, new ProtocolOpenOptions(true, CacheMode.Writeback));

        BlockStatus hole = await file.GetBlockStatusAsync(0, file.Length);
        BlockStatus data = await file.GetBlockStatusAsync(65536, file.Length - 65536);
        BlockStatus tail = await file.GetBlockStatusAsync(69632, file.Length - 69632);

        Assert.Equal((BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated, 65536L), (hole.Flags, hole.Length));
        Assert.Equal((BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated, 4096L), (data.Flags, data.Length));
        Assert.Equal(BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated | BlockStatusFlags.Eof, tail.Flags);
        Assert.Equal(69632L, tail.HostOffset);
    }

    internal static void Build(string path, string steps)
    {
        System.IO.File.WriteAllBytes(path, []);
        foreach (string step in steps.Split(';'))
        {
            string[] parts = step.Split(' ');
            switch (parts[0])
            {
                case "truncate":
                    Tools.Check("truncate", "-s", parts[1], path);
                    break;
                case "dd":
                    long offset = long.Parse(parts[1]);
                    long length = long.Parse(parts[2]);
                    Tools.Check("dd", "if=/dev/urandom", $"of={path}", "bs=65536", $"seek={offset}", $"count={length}",
                        "conv=notrunc", "oflag=seek_bytes", "iflag=count_bytes,fullblock", "status=none");
                    break;
                case "fallocate":
                    Tools.Check("fallocate", "-o", parts[1], "-l", parts[2], path);
                    break;
                case "punch":
                    Tools.Check("fallocate", "-p", "-o", parts[1], "-l", parts[2], path);
                    break;
                default:
                    throw new ArgumentException($"unknown step {step}");
            }
        }
    }
}
