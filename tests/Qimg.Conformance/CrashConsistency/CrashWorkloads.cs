using System.Buffers.Binary;

namespace Qimg.Conformance.CrashConsistency;

/// <summary>
/// The writing commands under the crash-consistency harness. The image size is <c>QIMG_CRASH_IMAGE_MIB</c> MiB
/// (default 8, at least 8).
/// </summary>
public static class CrashWorkloads
{
    private const int MiB = 1 << 20;

    public static IReadOnlyList<CrashWorkload> All { get; } = [Convert(), ConvertOverExisting(), CheckRepairAll(), Dd(), ResizeGrowFull()];

    public static CrashWorkload ByName(string name) => All.Single(w => w.Name == name);

    private static int ImageBytes => Math.Max(8, int.TryParse(Environment.GetEnvironmentVariable("QIMG_CRASH_IMAGE_MIB"), out int mib) ? mib : 8) * MiB;

    /// <summary>
    /// <c>convert -O qcow2</c> of a raw source with holes, runs of random data and explicit zeros to a new image: every
    /// block shows the new data or zeros (the image may not exist yet).
    /// </summary>
    public static CrashWorkload Convert() => new()
    {
        Name = "convert",
        Setup = directory =>
        {
            string source = Path.Combine(directory, "s.raw");
            byte[] data = new byte[ImageBytes];
            var random = new Random(11);
            for (int offset = 0; offset < data.Length; offset += MiB)
            {
                // Per MiB: random data, a hole, random data with a zero run inside, and so on.
                switch (offset / MiB % 3)
                {
                    case 0:
                        random.NextBytes(data.AsSpan(offset, MiB));
                        break;
                    case 2:
                        random.NextBytes(data.AsSpan(offset, MiB / 2));
                        break;
                }
            }

            WriteSparse(source, data);
            string target = Path.Combine(directory, "t.qcow2");
            return new CrashScenario { Arguments = ["convert", "-O", "qcow2", source, target], Target = target, NewData = data };
        },
    };

    /// <summary>
    /// Issue 7 section 3: <c>convert -n</c> of a source with a hole over a target that has data there. Zeroing the hole
    /// frees clusters that later data may reuse; a block must never show another range's data.
    /// </summary>
    public static CrashWorkload ConvertOverExisting() => new()
    {
        Name = "convert-n",
        Setup = directory =>
        {
            int size = ImageBytes;
            string initial = Path.Combine(directory, "t0.qcow2");
            Tool("qemu-img", "create", "-q", "-f", "qcow2", initial, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Tool("qemu-io", "-c", "write -P 0xaa 1M 4M", initial);
            byte[] old = new byte[size];
            old.AsSpan(MiB, 4 * MiB).Fill(0xaa);

            string source = Path.Combine(directory, "s.raw");
            byte[] data = new byte[size];
            new Random(5).NextBytes(data.AsSpan(5 * MiB + 8192));
            WriteSparse(source, data);
            string target = Path.Combine(directory, "t.qcow2");
            return new CrashScenario
            {
                Arguments = ["convert", "-n", "-O", "qcow2", source, target],
                Target = target,
                InitialTarget = initial,
                OldData = old,
                NewData = data,
            };
        },
    };

    /// <summary>
    /// <c>check -r all</c> of an image with refcounts set to 0 under used clusters (errors) and one set too high (a
    /// leak): the guest data never changes, and the image never has more errors than before the repair.
    /// </summary>
    public static CrashWorkload CheckRepairAll() => new()
    {
        Name = "check-r-all",
        Setup = directory =>
        {
            int size = ImageBytes;
            string initial = Path.Combine(directory, "c0.qcow2");
            Tool("qemu-img", "create", "-q", "-f", "qcow2", initial, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Tool("qemu-io", "-c", "write -P 0x11 0 3M", "-c", $"write -P 0x22 {size / 2} 2M", "-c", $"write -P 0x33 {size - MiB} 512k", initial);
            using (FileStream file = File.Open(initial, FileMode.Open, FileAccess.ReadWrite))
            {
                Span<byte> header = stackalloc byte[104];
                file.ReadExactly(header);
                long tableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(header[48..]);
                Span<byte> entry = stackalloc byte[8];
                file.Position = tableOffset;
                file.ReadExactly(entry);
                long block = (long)BinaryPrimitives.ReadUInt64BigEndian(entry);

                // 16-bit refcounts: data clusters 5 and 20 claim no reference; cluster 40 claims two.
                foreach ((int cluster, ushort refcount) in new[] { (5, (ushort)0), (20, (ushort)0), (40, (ushort)2) })
                {
                    file.Position = block + 2L * cluster;
                    file.Write([(byte)(refcount >> 8), (byte)refcount]);
                }
            }

            Outcome check = Harness.QemuImg("check", initial);
            int errors = CrashHarness.CheckErrors(check.Stdout);
            if (check.ExitCode != 2 || errors == 0)
            {
                throw new InvalidOperationException($"the damaged image should have errors: {check}");
            }

            byte[] data = CrashHarness.ReadGuest(initial, Path.Combine(directory, "c0.raw"));
            string target = Path.Combine(directory, "c.qcow2");
            return new CrashScenario
            {
                Arguments = ["check", "-r", "all", target],
                Target = target,
                InitialTarget = initial,
                OldData = data,
                NewData = data,
                AllowedCheckErrors = errors,
            };
        },
    };

    /// <summary>
    /// <c>dd -O qcow2</c> of a raw source with data and holes into a new image (64 KiB blocks): every block shows the new
    /// data or zeros.
    /// </summary>
    public static CrashWorkload Dd() => new()
    {
        Name = "dd",
        Setup = directory =>
        {
            string source = Path.Combine(directory, "s.raw");
            byte[] data = new byte[ImageBytes];
            var random = new Random(13);
            for (int offset = 0; offset < data.Length; offset += MiB)
            {
                if (offset / MiB % 2 == 0)
                {
                    random.NextBytes(data.AsSpan(offset, 3 * MiB / 4));
                }
            }

            WriteSparse(source, data);
            string target = Path.Combine(directory, "t.qcow2");
            return new CrashScenario { Arguments = ["dd", "-O", "qcow2", "bs=64k", "if=" + source, "of=" + target], Target = target, NewData = data };
        },
    };

    /// <summary>
    /// <c>resize --preallocation=full</c> growing a qcow2 with data to three times its size: the old range keeps its
    /// data, the new range reads as zeros, and a kill leaves the old size or the new one.
    /// </summary>
    public static CrashWorkload ResizeGrowFull() => new()
    {
        Name = "resize-full",
        Setup = directory =>
        {
            int size = ImageBytes;
            string initial = Path.Combine(directory, "r0.qcow2");
            Tool("qemu-img", "create", "-q", "-f", "qcow2", initial, size.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Tool("qemu-io", "-c", "write -P 0x44 0 2M", "-c", $"write -P 0x55 {size - MiB} 1M", initial);
            byte[] old = CrashHarness.ReadGuest(initial, Path.Combine(directory, "r0.raw"));
            byte[] data = new byte[3 * size];
            old.CopyTo(data, 0);
            string target = Path.Combine(directory, "r.qcow2");
            return new CrashScenario
            {
                Arguments = ["resize", "--preallocation=full", target, (3L * size).ToString(System.Globalization.CultureInfo.InvariantCulture)],
                Target = target,
                InitialTarget = initial,
                OldData = old,
                NewData = data,
                OldSizeAllowed = true,
            };
        },
    };

    /// <summary>Writes <paramref name="data"/> as a sparse raw file: all-zero 4 KiB blocks stay holes.</summary>
    private static void WriteSparse(string path, byte[] data)
    {
        using FileStream file = File.Create(path);
        file.SetLength(data.Length);
        for (int offset = 0; offset < data.Length; offset += CrashHarness.BlockSize)
        {
            ReadOnlySpan<byte> block = data.AsSpan(offset, CrashHarness.BlockSize);
            if (block.IndexOfAnyExcept((byte)0) >= 0)
            {
                file.Position = offset;
                file.Write(block);
            }
        }
    }

    private static void Tool(string program, params string[] args) => Harness.Ok(program, args);
}
