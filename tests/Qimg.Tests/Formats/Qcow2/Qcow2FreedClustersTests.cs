using Qimg.Block;
using Qimg.Formats.Qcow2;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>
/// Issue 7 section 3: clusters freed by zero writes are not reused before the L2 entries that dropped them are in the
/// file. Every write the image makes is recorded; a crash after any prefix (replayed onto the original file) must leave
/// each 4 KiB block showing its old data, its new data or zeros, never another range's data.
/// </summary>
public sealed class Qcow2FreedClustersTests : IDisposable
{
    private const int MiB = 1 << 20;
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Crash_AfterZeroingThenWriting_NeverShowsAnotherRangesData()
    {
        // The reproducer at 8 MiB: old data at 1-5 MiB, zeroed up to 5 MiB + 8 KiB, new data after it.
        string template = _dir.File("template.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", template, "8M");
        QemuTools.Io(template, "write -P 0xaa 1M 4M");
        byte[] initial = File.ReadAllBytes(template);
        byte[] oldData = new byte[8 * MiB];
        oldData.AsSpan(MiB, 4 * MiB).Fill(0xaa);
        byte[] newData = new byte[8 * MiB];
        int dataStart = (5 * MiB) + 8192;
        new Random(3).NextBytes(newData.AsSpan(dataStart));

        var file = new Qcow2UnitTests.RecordingNode(initial.ToArray());
        Qcow2Image image = await Qcow2Image.OpenAsync(file, new Qcow2OpenParameters(false, null, null), default);
        await using (image)
        {
            await image.WriteZeroesAsync(0, dataStart, ZeroFlags.MayUnmap);
            for (int offset = dataStart; offset < newData.Length; offset += 256 * 1024)
            {
                int length = Math.Min(256 * 1024, newData.Length - offset);
                await image.WriteAsync(offset, newData.AsMemory(offset, length));
            }
        }

        List<(long Offset, byte[] Data)?> writes = file.Writes;
        string state = _dir.File("state.qcow2");
        string raw = _dir.File("state.raw");
        for (int count = 1; count <= writes.Count; count++)
        {
            if (writes[count - 1] is null)
            {
                continue;
            }

            byte[] bytes = initial.ToArray();
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

            File.WriteAllBytes(state, bytes);
            (int code, string output) = QemuTools.Check(state);
            Assert.True(code is 0 or 3, $"After {count} of {writes.Count} writes qemu-img check found corruption ({code}):\n{output}");
            QemuTools.Img("convert", "-O", "raw", state, raw);
            byte[] guest = File.ReadAllBytes(raw);
            for (int offset = 0; offset < guest.Length; offset += 4096)
            {
                ReadOnlySpan<byte> block = guest.AsSpan(offset, 4096);
                Assert.True(
                    block.SequenceEqual(newData.AsSpan(offset, 4096)) || block.SequenceEqual(oldData.AsSpan(offset, 4096)) || block.IndexOfAnyExcept((byte)0) < 0,
                    $"After {count} of {writes.Count} writes the block at 0x{offset:x} shows another range's data");
            }
        }
    }

    [Fact]
    public async Task ZeroedClusters_AreReusedOnlyOnceTheirDropIsDurable()
    {
        string template = _dir.File("reuse.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", template, "8M");
        QemuTools.Io(template, "write -P 0xaa 1M 4M");
        var file = new Qcow2UnitTests.RecordingNode(File.ReadAllBytes(template));
        long sizeBefore = file.Length;
        Qcow2Image image = await Qcow2Image.OpenAsync(file, new Qcow2OpenParameters(false, null, null), default);
        await using (image)
        {
            await image.WriteZeroesAsync(MiB, 4 * MiB, ZeroFlags.MayUnmap);
            await image.WriteAsync(6 * MiB, Filled(1));

            // The 64 freed clusters wait for the L2 table that dropped them: the new one goes past the end of the file.
            Assert.Equal(sizeBefore + 65536, file.Length);
        }

        // Closing flushed the L2 cache: the freed clusters are reused now, the file does not grow.
        var reopened = new Qcow2UnitTests.RecordingNode(file.Bytes);
        image = await Qcow2Image.OpenAsync(reopened, new Qcow2OpenParameters(false, null, null), default);
        await using (image)
        {
            await image.WriteAsync(7 * MiB, Filled(2));
        }

        Assert.Equal(sizeBefore + 65536, reopened.Length);
    }

    [Fact]
    public void FreedClusters_CoalesceAndStayBounded()
    {
        var freed = new Qcow2FreedClusters();
        freed.Add(10);
        freed.Add(12);
        freed.Add(11);
        Assert.Equal(1, freed.RangeCount);
        Assert.True(freed.Contains(11, out long end));
        Assert.Equal(13, end);
        Assert.False(freed.Contains(13, out _));
        Assert.False(freed.Contains(9, out _));

        freed.Clear();
        for (int i = 0; i < Qcow2FreedClusters.MaxRanges * 3; i++)
        {
            freed.Add(i * 10L);
        }

        Assert.Equal(Qcow2FreedClusters.MaxRanges, freed.RangeCount);
        for (int i = 0; i < Qcow2FreedClusters.MaxRanges * 3; i++)
        {
            // Widening only ever adds clusters: every freed cluster is still covered.
            Assert.True(freed.Contains(i * 10L, out _), $"cluster {i * 10} lost");
        }

        Assert.Equal(0, freed.Lowest);
    }

    private static byte[] Filled(byte value)
    {
        byte[] data = new byte[65536];
        data.AsSpan().Fill(value);
        return data;
    }
}
