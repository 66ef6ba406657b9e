using System.Buffers.Binary;
using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>
/// Metadata write ordering: every write the image makes is recorded; a crash after any prefix of them (replayed onto
/// the original file) leaves an image that qemu-img check finds clean or only leaking clusters. With lazy refcounts a
/// crashed image may instead be dirty, and is then repaired by the next writable open.
/// </summary>
public sealed class Qcow2CrashConsistencyTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("cluster_size=512", "2M")]
    [InlineData("cluster_size=512,refcount_bits=64", "3M")]
    [InlineData("cluster_size=4k,extended_l2=off", "8M")]
    [InlineData("extended_l2=on,cluster_size=16k", "8M")]
    [InlineData("lazy_refcounts=on,cluster_size=1k", "4M")]
    public async Task Crash_AfterAnyWrite_LeavesAtMostLeaks(string options, string size)
    {
        string template = _dir.File("template.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", options, template, size);
        byte[] initial = File.ReadAllBytes(template);
        var file = new Qcow2UnitTests.RecordingNode(initial.ToArray());
        Qcow2Image image = await Qcow2Image.OpenAsync(file, new Qcow2OpenParameters(false, null, null), default);
        await using (image)
        {
            byte[] model = new byte[image.Length];
            await Qcow2ImageWriteTests.RunRandomOperationsAsync(image, model, new Random(size.Length * 7 + options.Length), 60);
        }

        List<(long Offset, byte[] Data)?> writes = file.Writes;
        var points = new SortedSet<int> { writes.Count };
        for (int i = 0; i < 40; i++)
        {
            points.Add(writes.Count * i / 40);
        }

        // Prefixes ending right after each metadata-looking small write are the interesting ones.
        for (int i = 0; i < writes.Count && points.Count < 70; i++)
        {
            if (writes[i] is { } w && w.Data.Length <= 4096 && i % 3 == 0)
            {
                points.Add(i + 1);
            }
        }

        string state = _dir.File("state.qcow2");
        int repaired = 0;
        foreach (int count in points)
        {
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
            bool dirty = (BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(72)) & 1) != 0;
            if (code is 0 or 3)
            {
                continue;
            }

            Assert.True(dirty, $"After {count} of {writes.Count} writes qemu-img check found corruption ({code}):\n{output}");
            if (repaired++ < 3)
            {
                await using (FormatNode node = await DiskImage.OpenAsync(state, new ImageOpenOptions { ReadOnly = false }))
                {
                    Assert.False(node.IsDirty);
                }

                (int after, string afterOutput) = QemuTools.Check(state);
                Assert.True(after == 0, $"Repair after {count} writes left: {afterOutput}");
            }
        }
    }
}
