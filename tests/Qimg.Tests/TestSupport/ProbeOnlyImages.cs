using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;

namespace Qimg.Tests.TestSupport;

/// <summary>
/// One image of every format qemu-img 7.2 probes that qimg recognises but cannot open yet: made by qemu-img where it
/// can create the format (every vmdk subformat, vpc, vhdx, vdi, qed, qcow, parallels), hand-built from QEMU's layouts
/// where it cannot (bochs, cloop, dmg) or cannot on CI (luks: key derivation needs a thread CPU clock that advances).
/// Every hand-built image is one qemu-img 7.2 opens. Shared by the library and CLI tests (linked into both).
/// </summary>
public sealed class ProbeOnlyImages : IDisposable
{
    /// <summary>Each image's file name and the format qemu-img probes for it.</summary>
    public static readonly (string Name, string Format)[] All =
    [
        ("monolithicSparse.vmdk", "vmdk"),
        ("monolithicFlat.vmdk", "vmdk"),
        ("twoGbMaxExtentSparse.vmdk", "vmdk"),
        ("twoGbMaxExtentFlat.vmdk", "vmdk"),
        ("streamOptimized.vmdk", "vmdk"),
        ("dynamic.vhd", "vpc"),
        ("image.vhdx", "vhdx"),
        ("image.vdi", "vdi"),
        ("image.qed", "qed"),
        ("image.qcow", "qcow"),
        ("image.parallels", "parallels"),
        ("image.luks", "luks"),
        ("image.bochs", "bochs"),
        ("image.cloop", "cloop"),
        ("image.dmg", "dmg"),
    ];

    /// <summary>The cloop V2.0 preamble (QEMU's cloop_probe).</summary>
    public const string CloopPreamble = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";

    private readonly string _directory = Directory.CreateTempSubdirectory("qimg-probe-only-").FullName;

    public ProbeOnlyImages()
    {
        foreach (string subformat in (string[])["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"])
        {
            QemuImg("create", "-q", "-f", "vmdk", "-o", "subformat=" + subformat, this[subformat + ".vmdk"], "1M");
        }

        QemuImg("create", "-q", "-f", "vpc", "-o", "subformat=dynamic", this["dynamic.vhd"], "1M");
        QemuImg("create", "-q", "-f", "vpc", "-o", "subformat=fixed", this["fixed.vhd"], "1M");
        foreach ((string name, string format) in (ReadOnlySpan<(string, string)>)[("image.vhdx", "vhdx"), ("image.vdi", "vdi"), ("image.qed", "qed"), ("image.qcow", "qcow"), ("image.parallels", "parallels")])
        {
            QemuImg("create", "-q", "-f", format, this[name], "1M");
        }

        File.WriteAllBytes(this["image.bochs"], Bochs());
        File.WriteAllBytes(this["image.cloop"], Cloop());
        File.WriteAllBytes(this["image.dmg"], Dmg());
        using (FileStream luks = File.Create(this["image.luks"]))
        {
            luks.Write(LuksHeader(out long payloadOffset));
            luks.SetLength(payloadOffset + (1 << 20));
        }
    }

    public string Root => _directory;

    /// <summary>The absolute path of <paramref name="name"/>.</summary>
    public string this[string name] => Path.Combine(_directory, name);

    /// <summary>xunit member data: each image's name and probed format.</summary>
    public static IEnumerable<object[]> Cases() => All.Select(c => new object[] { c.Name, c.Format });

    /// <summary>A growing Bochs redolog of 2 MiB with no extent allocated (block/bochs.c's header).</summary>
    public static byte[] Bochs()
    {
        byte[] image = new byte[512 + (512 * 4)];
        Encoding.ASCII.GetBytes("Bochs Virtual HD Image").CopyTo(image, 0);
        Encoding.ASCII.GetBytes("Redolog").CopyTo(image, 32);
        Encoding.ASCII.GetBytes("Growing").CopyTo(image, 48);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(64), 0x00020000); // version 2.0
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(68), 512);        // header size
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(72), 512);        // catalog entries
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(76), 1);          // bitmap size
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(80), 4096);       // extent size
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(88), 512 * 4096); // disk size
        image.AsSpan(512).Fill(0xff);                                          // every catalog entry unallocated
        return image;
    }

    /// <summary>A cloop V2.0 image of one empty 512-byte block (block/cloop.c's layout).</summary>
    public static byte[] Cloop()
    {
        byte[] image = new byte[128 + 8 + 16];
        Encoding.ASCII.GetBytes(CloopPreamble).CopyTo(image, 0);
        BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(128), 512);  // block size
        BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(132), 1);    // block count
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(136), 152);  // offsets[0]: the block starts after the table
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(144), 152);  // offsets[1]: and is empty
        return image;
    }

    /// <summary>A UDIF image of one sector: an empty property list, then the 512-byte "koly" trailer (block/dmg.c).</summary>
    public static byte[] Dmg()
    {
        byte[] image = new byte[1024];
        Encoding.ASCII.GetBytes("<plist/>").CopyTo(image, 0);
        Span<byte> trailer = image.AsSpan(512);
        Encoding.ASCII.GetBytes("koly").CopyTo(trailer);
        BinaryPrimitives.WriteUInt64BigEndian(trailer[0xd8..], 0);     // XML offset
        BinaryPrimitives.WriteUInt64BigEndian(trailer[0xe0..], 8);     // XML length
        BinaryPrimitives.WriteUInt64BigEndian(trailer[0x1ec..], 1);    // sector count
        return image;
    }

    /// <summary>A LUKS1 header (aes-xts-plain64, sha256) with all eight key slots disabled (crypto/block-luks.c).</summary>
    public static byte[] LuksHeader(out long payloadOffset)
    {
        const int SlotSectors = 504; // 64-byte key × 4000 stripes, in sectors, aligned to 4 KiB
        byte[] header = new byte[592];
        header[0] = (byte)'L';
        header[1] = (byte)'U';
        header[2] = (byte)'K';
        header[3] = (byte)'S';
        header[4] = 0xba;
        header[5] = 0xbe;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(6), 1);
        Encoding.ASCII.GetBytes("aes").CopyTo(header, 8);
        Encoding.ASCII.GetBytes("xts-plain64").CopyTo(header, 40);
        Encoding.ASCII.GetBytes("sha256").CopyTo(header, 72);
        uint payloadSector = 8 + (8 * SlotSectors);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(104), payloadSector);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(108), 64);   // master key length
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(164), 1000); // master key iterations
        for (int slot = 0; slot < 8; slot++)
        {
            Span<byte> entry = header.AsSpan(208 + (48 * slot), 48);
            BinaryPrimitives.WriteUInt32BigEndian(entry, 0x0000dead);                                  // disabled
            BinaryPrimitives.WriteUInt32BigEndian(entry[40..], (uint)(8 + (slot * SlotSectors)));       // key material sector
            BinaryPrimitives.WriteUInt32BigEndian(entry[44..], 4000);                                   // stripes
        }

        payloadOffset = payloadSector * 512L;
        return header;
    }

    /// <summary>The first 512 bytes of <paramref name="path"/>, zero-padded, as probing sees them.</summary>
    public static byte[] ProbeBuffer(string path)
    {
        byte[] buffer = new byte[512];
        using FileStream stream = File.OpenRead(path);
        stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        return buffer;
    }

    /// <summary>The format <c>qemu-img info</c> reports for <paramref name="path"/>, or null when it cannot open it.</summary>
    public static string? QemuFormat(string path)
    {
        (int code, string stdout, _) = Run("qemu-img", "info", "--output=json", path);
        if (code != 0)
        {
            return null;
        }

        using var json = System.Text.Json.JsonDocument.Parse(stdout);
        return json.RootElement.GetProperty("format").GetString();
    }

    /// <summary>Runs a tool in the C locale; returns its exit code and output.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["LC_ALL"] = "C";
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static void QemuImg(params string[] args)
    {
        (int code, string stdout, string stderr) = Run("qemu-img", args);
        Assert.True(code == 0, $"qemu-img {string.Join(' ', args)} failed: {stderr}{stdout}");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
