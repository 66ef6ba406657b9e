using System.Buffers.Binary;
using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2.Check;

/// <summary>
/// Repairs through the library: the repair of a dirty image when it is opened for writing (the report, the result and
/// the file are qemu-io's), and the crash safety of <c>check -r</c> (a repair interrupted after any of its writes leaves
/// an image that is repaired by the next writable open, without losing guest data).
/// </summary>
public sealed class Qcow2CheckRepairTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("lazy_refcounts=on,cluster_size=4k")]
    [InlineData("lazy_refcounts=on,refcount_bits=1")]
    [InlineData("lazy_refcounts=on,refcount_bits=64,cluster_size=1k")]
    [InlineData("lazy_refcounts=on,extended_l2=on")]
    public async Task DirtyImage_OpenForWriting_RepairedLikeQemu(string options)
    {
        string image = _dir.File("dirty.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", options, image, "16M");
        QemuTools.Run("qemu-io", "-c", "write -P 1 0 256k", "-c", "write -P 2 8M 64k", "-c", "write -P 3 5M 4k", "-c", "abort", image);
        Assert.True((await ReadFeaturesAsync(image) & 1) != 0, "qemu-io left the image clean");

        string byQemu = Copy(image, "by-qemu.qcow2");
        string byQimg = Copy(image, "by-qimg.qcow2");
        (int code, string stdout, string stderr) = QemuTools.Run("qemu-io", "-c", "flush", byQemu);
        Assert.True(code == 0, stdout + stderr);

        var report = new List<string>();
        await using (FormatNode node = await DiskImage.OpenAsync(byQimg, new ImageOpenOptions { ReadOnly = false, CheckReport = m => report.Add(m.Text) }))
        {
            Assert.False(node.IsDirty);
        }

        Assert.Equal(stderr, string.Concat(report.Select(line => line + "\n")));
        Assert.Contains("Rebuilding refcount structure", report);
        Assert.True(File.ReadAllBytes(byQemu).AsSpan().SequenceEqual(File.ReadAllBytes(byQimg)), "the repaired files differ");
        Assert.Equal(0, QemuTools.Check(byQimg).ExitCode);
    }

    [Fact]
    public async Task DirtyImage_RepairFails_OpenFailsWithQemuMessage()
    {
        // A refcount table entry with reserved bits asks for a rebuild; with a read-only file the rebuild cannot write.
        string image = _dir.File("dirty.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", image, "16M");
        QemuTools.Run("qemu-io", "-c", "write -P 1 0 64k", "-c", "abort", image);
        var file = new ReadOnlyMemoryNode(File.ReadAllBytes(image));
        var report = new List<CheckMessage>();
        var parameters = new Qcow2OpenParameters(false, null, null, CheckReport: report.Add);
        IOException e = await Assert.ThrowsAsync<IOException>(async () => await Qcow2Image.OpenAsync(file, parameters, default));
        Assert.Equal("Could not repair dirty image: Input/output error", e.Message);
        Assert.Contains(new CheckMessage("ERROR writing refblock: Input/output error", IsError: true), report);
    }

    [Theory]
    [InlineData("refcount-zero", "")]
    [InlineData("refcount-zero", "compat=0.10")]
    [InlineData("leaks-and-copied", "")]
    [InlineData("leaks-and-copied", "refcount_bits=2,cluster_size=4k")]
    [InlineData("prealloc-unaligned", "")]
    [InlineData("snapshot-incomplete", "")]
    public async Task Repair_InterruptedAfterAnyWrite_FinishedByTheNextOpen(string corruption, string options)
    {
        string image = _dir.File("image.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", options.Length == 0 ? "cluster_size=64k" : options, image, "8M");
        QemuTools.Io(image, "write -P 1 0 192k", "write -P 2 1M 64k", "write -P 3 4M 64k");
        if (corruption == "snapshot-incomplete")
        {
            QemuTools.Img("snapshot", "-c", "s1", image);
            QemuTools.Io(image, "write -P 4 0 64k");
        }

        byte[] original = File.ReadAllBytes(image);
        Corrupt(original, corruption);
        File.WriteAllBytes(image, original);

        // The guest data a repair must keep: what qemu-img's own repair keeps.
        string reference = Copy(image, "reference.qcow2");
        QemuTools.Run("qemu-img", "check", "-r", "all", reference);
        byte[] guest = Qcow2TestSupport.ReadAllWithQemu(_dir, reference);

        // Repair once, recording every write and flush.
        var file = new Qcow2UnitTests.RecordingNode(original.ToArray());
        Qcow2Image repaired = await Qcow2Image.OpenAsync(file, new Qcow2OpenParameters(false, null, null, Check: true), default);
        await using (repaired)
        {
            CheckResult result = await repaired.CheckAsync(RepairMode.All, null);
            Assert.True(result.CorruptionsFixed + result.LeaksFixed > 0);
        }

        List<(long Offset, byte[] Data)?> writes = file.Writes;
        Assert.NotEmpty(writes);

        bool version3 = BinaryPrimitives.ReadUInt32BigEndian(original.AsSpan(4)) >= 3;
        string state = _dir.File("state.qcow2");
        for (int count = 1; count <= writes.Count; count++)
        {
            if (writes[count - 1] is null)
            {
                // A flush: the same state as before it.
                continue;
            }

            byte[] bytes = Apply(original, writes, count);
            File.WriteAllBytes(state, bytes);
            bool dirty = (BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(72)) & 1) != 0;
            if (version3 && count < writes.Count && !dirty && QemuTools.Check(state).ExitCode != 0)
            {
                Assert.Fail($"After {count} of {writes.Count} writes the image is neither repaired nor marked dirty");
            }

            // Whatever the point of the interruption, what follows finishes the repair: the next writable open (a dirty
            // version 3 image), or a repair again.
            if (dirty)
            {
                await using FormatNode node = await DiskImage.OpenAsync(state, new ImageOpenOptions { ReadOnly = false });
            }
            else
            {
                (int code, _, string stderr) = QemuTools.Run("qemu-img", "check", "-r", "all", state);
                Assert.True(code == 0, $"After {count} of {writes.Count} writes: {stderr}");
            }

            (int finalCode, string output) = QemuTools.Check(state);
            Assert.True(finalCode == 0, $"After {count} of {writes.Count} writes and a repair: {output}");
            Qcow2TestSupport.AssertSameBytes(guest, Qcow2TestSupport.ReadAllWithQemu(_dir, state));
        }
    }

    private static byte[] Apply(byte[] original, List<(long Offset, byte[] Data)?> writes, int count)
    {
        byte[] bytes = original.ToArray();
        for (int i = 0; i < count; i++)
        {
            if (writes[i] is { } w)
            {
                if (w.Offset + w.Data.Length > bytes.Length)
                {
                    Array.Resize(ref bytes, (int)(w.Offset + w.Data.Length));
                }

                w.Data.CopyTo(bytes, w.Offset);
            }
        }

        return bytes;
    }

    /// <summary>Breaks the image in memory (64 KiB or 4 KiB clusters, data at guest offset 0 in the first L2 table).</summary>
    private static void Corrupt(byte[] image, string corruption)
    {
        int clusterBits = (int)BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(20));
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(40));
        long l2 = (long)(BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)l1)) & Qcow2Layout.L1OffsetMask);
        int order = BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(4)) >= 3 ? (int)BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(96)) : 4;
        long table = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(48));
        long block = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)table));
        Span<byte> refcounts = image.AsSpan((int)block, 1 << clusterBits);
        ulong entry0 = BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)l2));
        long data0 = (long)(entry0 & Qcow2Layout.L2OffsetMask) >> clusterBits;
        switch (corruption)
        {
            case "refcount-zero":
                Qcow2RefcountBlock.Set(refcounts, data0, 0, order);
                break;
            case "leaks-and-copied":
                Qcow2RefcountBlock.Set(refcounts, data0, 2, order);
                Qcow2RefcountBlock.Set(refcounts, data0 + 1, Math.Min(3, Qcow2RefcountBlock.MaxRefcount(order)), order);
                BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)l2 + 16), BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)l2 + 16)) & ~Qcow2Layout.OflagCopied);
                break;
            case "prealloc-unaligned":
                BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan((int)l2 + 8), BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan((int)l2 + 8)) + 0x201);
                break;
            case "snapshot-incomplete":
                long snapshots = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(64));
                int idSize = BinaryPrimitives.ReadUInt16BigEndian(image.AsSpan((int)snapshots + 12));
                int nameSize = BinaryPrimitives.ReadUInt16BigEndian(image.AsSpan((int)snapshots + 14));
                int extraSize = (int)BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan((int)snapshots + 36));

                // Keep only 8 bytes of extra data (moving ID and name up), as an old writer would have.
                Span<byte> entry = image.AsSpan((int)snapshots);
                entry.Slice(40 + extraSize, idSize + nameSize).CopyTo(entry[48..]);
                BinaryPrimitives.WriteUInt32BigEndian(entry[36..], 8);
                break;
        }
    }

    private static async Task<ulong> ReadFeaturesAsync(string image)
    {
        byte[] header = new byte[80];
        await using FileStream stream = File.OpenRead(image);
        await stream.ReadExactlyAsync(header);
        return BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(72));
    }

    /// <summary>An image file in memory whose writes fail with EIO.</summary>
    private sealed class ReadOnlyMemoryNode : Qimg.Block.BlockNode
    {
        private readonly byte[] _data;

        public ReadOnlyMemoryNode(byte[] data)
            : base("memory", false)
        {
            _data = data;
        }

        public override string DriverName => "file";

        public override bool IsProtocol => true;

        public override bool CanGrow => true;

        public override long Length => (_data.Length + 511) & ~511L;

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            buffer.Span.Clear();
            if (offset < _data.Length)
            {
                _data.AsSpan((int)offset, (int)Math.Min(buffer.Length, _data.Length - offset)).CopyTo(buffer.Span);
            }

            return default;
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, Qimg.Block.WriteFlags flags, CancellationToken cancellationToken) =>
            throw new IOException("Input/output error", 5);
    }

    private string Copy(string image, string name)
    {
        string copy = _dir.File(name);
        File.Copy(image, copy);
        return copy;
    }
}
