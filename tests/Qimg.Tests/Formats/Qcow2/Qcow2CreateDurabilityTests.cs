using Qimg.Block;
using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Options;
using Qimg.Protocols;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>
/// The order of writes and flushes of a qcow2 create (issue 7, section 7): QEMU's, as strace shows it for
/// <c>qemu-img create -f qcow2</c> 7.2 (four fdatasyncs for 1G), so that no header field reaches the disk before the
/// table it points to has been flushed.
/// </summary>
public sealed class Qcow2CreateDurabilityTests
{
    /// <summary>A protocol whose one file is an in-memory node recording writes and flushes.</summary>
    private sealed class RecordingProtocol : ProtocolDriver
    {
        public Qcow2UnitTests.RecordingNode Node { get; private set; } = new(0);

        public override string Name => "file";

        public override bool Handles(string fileName) => true;

        public override ValueTask<BlockNode> OpenAsync(string fileName, ProtocolOpenOptions options, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<BlockNode>(Node);

        public override ValueTask CreateAsync(string fileName, long size, OptionValues options, Action<string>? warning, CancellationToken cancellationToken = default)
        {
            Node = new Qcow2UnitTests.RecordingNode((int)size);
            return default;
        }
    }

    private static async Task<List<string>> CreateAndRecordAsync(long size, string? options = null)
    {
        var protocol = new RecordingProtocol();
        var values = new OptionValues();
        foreach (string pair in (options ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = pair.Split('=');
            values.Set(parts[0], parts[1]);
        }

        await Qcow2Driver.Instance.CreateAsync(new ImageCreateRequest("x.qcow2", size, values, protocol, FormatRegistry.Default, ImplicitOpenPolicy.Permissive));
        return Effective(protocol.Node.Log);
    }

    /// <summary>
    /// The flushes that reach the disk: a flush with no write since the previous one is skipped by the file protocol
    /// (QEMU's flushed_gen check), so it is dropped here as strace would not show it.
    /// </summary>
    private static List<string> Effective(List<string> log)
    {
        var result = new List<string>();
        bool written = false;
        foreach (string entry in log)
        {
            if (entry == "flush")
            {
                if (written)
                {
                    result.Add(entry);
                }

                written = false;
            }
            else if (entry.StartsWith("write", StringComparison.Ordinal))
            {
                result.Add(entry);
                written = true;
            }
        }

        return result;
    }

    [Fact]
    public async Task Create_1G_WritesAndFlushesInQemuOrder()
    {
        List<string> log = await CreateAndRecordAsync(1L << 30);

        // strace -e pwrite64,fdatasync qemu-img create -f qcow2 x 1G (7.2): minimal header, refcount table, full
        // header, refcount block, fdatasync; L1 table, fdatasync; L1 size and offset in the header, fdatasync; size in
        // the header, fdatasync.
        Assert.Equal(
            ["write 0", "write 65536", "write 0", "write 131072", "flush", "write 196608", "flush", "write 36", "flush", "write 24", "flush"],
            log);
    }

    [Fact]
    public async Task Create_HeaderPointsOnlyAtFlushedTables()
    {
        List<string> log = await CreateAndRecordAsync(1L << 30);

        // The header's L1 fields (offset 36) are written only after the L1 table (cluster 3) was written and flushed,
        // and nothing follows the last header write but a flush.
        int l1 = log.IndexOf("write 196608");
        int header = log.IndexOf("write 36");
        Assert.True(l1 >= 0 && header > l1 + 1 && log[l1 + 1] == "flush", string.Join(", ", log));
        Assert.Equal("flush", log[^1]);
    }

    [Fact]
    public async Task Create_PreallocationMetadata_FlushesAsQemuDoes()
    {
        List<string> log = await CreateAndRecordAsync(8L << 20, "preallocation=metadata");

        // qemu-img create -f qcow2 -o preallocation=metadata x 8M issues eight fdatasyncs (strace, 7.2).
        Assert.Equal(8, log.Count(e => e == "flush"));
        Assert.Equal("flush", log[^1]);
    }
}
