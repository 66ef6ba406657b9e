using System.Buffers.Binary;
using System.Text;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Operations.Convert;
using Qimg.Operations.Create;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.ProbeOnly;

/// <summary>
/// Formats qemu-img 7.2 probes that qimg cannot open yet (issue 7 §2): probing gives QEMU's answer, with its scores and
/// tie order, and opening or creating one fails plainly instead of reading the container's bytes as raw.
/// </summary>
public sealed class ProbeOnlyFormatTests : IClassFixture<ProbeOnlyImages>, IDisposable
{
    private readonly ProbeOnlyImages _images;
    private readonly TestDirectory _directory = new();

    public ProbeOnlyFormatTests(ProbeOnlyImages images) => _images = images;

    public void Dispose() => _directory.Dispose();

    public static IEnumerable<object[]> Images() => ProbeOnlyImages.Cases();

    // ---------------------------------------------------------------- probing, against qemu-img

    [Theory]
    [MemberData(nameof(Images))]
    public void Probe_ImageQemuImgOpens_GivesTheFormatQemuImgReports(string name, string format)
    {
        string path = _images[name];
        Assert.Equal(format, ProbeOnlyImages.QemuFormat(path));

        FormatDriver? probed = FormatRegistry.Default.Probe(ProbeOnlyImages.ProbeBuffer(path), path);

        Assert.Equal(format, probed?.Name);
        Assert.False(probed!.IsImplemented);
    }

    [Theory]
    [InlineData("fixed.vhd")]                  // the footer is only at the end: QEMU's vpc probe looks at offset 0
    [InlineData("monolithicFlat-flat.vmdk")]   // a flat extent is plain data
    public void Probe_FilesQemuProbesAsRaw_AreRaw(string name)
    {
        string path = _images[name];
        Assert.Equal("raw", ProbeOnlyImages.QemuFormat(path));

        Assert.Equal("raw", FormatRegistry.Default.Probe(ProbeOnlyImages.ProbeBuffer(path), path)?.Name);
    }

    // ---------------------------------------------------------------- ties and file names, against qemu-img

    /// <summary>
    /// VDI's signature sits at offset 64, so it can share a file with another format's magic at offset 0. Both score
    /// 100 and QEMU takes the first in its driver list. qemu-img opens the parallels and qed files; for the others its
    /// error comes from the vdi driver.
    /// </summary>
    [Theory]
    [InlineData("image.parallels", "parallels")]
    [InlineData("image.qed", "qed")]
    [InlineData("monolithicSparse.vmdk", "vdi")]
    [InlineData("dynamic.vhd", "vdi")]
    [InlineData("image.vhdx", "vdi")]
    [InlineData("image.qcow", "vdi")]
    [InlineData("image.luks", "vdi")]
    [InlineData("qcow2", "vdi")]
    public void Probe_VdiSignatureAndAnotherMagic_TieGoesWhereQemuSendsIt(string name, string expected)
    {
        string path = _directory.File("tie.img");
        if (name == "qcow2")
        {
            QemuTools.Img("create", "-q", "-f", "qcow2", path, "1M");
        }
        else
        {
            File.Copy(_images[name], path);
        }

        using (FileStream stream = File.OpenWrite(path))
        {
            stream.Position = 64;
            stream.Write([0x7f, 0x10, 0xda, 0xbe]);
        }

        (int code, string stdout, string stderr) = ProbeOnlyImages.Run("qemu-img", "info", path);
        Assert.Contains(expected == "vdi" ? "VDI" : "file format: " + expected, code == 0 ? stdout : stderr, StringComparison.Ordinal);

        Assert.Equal(expected, FormatRegistry.Default.Probe(ProbeOnlyImages.ProbeBuffer(path), path)?.Name);
    }

    /// <summary>dmg probes by the name the image is opened by (2, as cloop's preamble scores): a cloop image named
    /// "*.dmg" is dmg, "x.dmg" is dmg whatever it holds, and the whole name counts, not its last component.</summary>
    [Theory]
    [InlineData("image.cloop", "c.dmg", "dmg")]
    [InlineData("image.cloop", ".dmg", "dmg")]
    [InlineData("image.cloop", "c.DMG", "cloop")]
    [InlineData("image.dmg", "d.img", "raw")]
    [InlineData("fixed.vhd", "f.dmg", "dmg")]
    public void Probe_DmgFileName_DecidesAsInQemu(string image, string name, string expected)
    {
        string path = _directory.File(name);
        File.Copy(_images[image], path);

        (int code, string stdout, string stderr) = ProbeOnlyImages.Run("qemu-img", "info", path);
        Assert.Contains(expected == "dmg" ? "UDIF trailer" : "file format: " + expected, code == 0 ? stdout : stderr, StringComparison.Ordinal);

        Assert.Equal(expected, FormatRegistry.Default.Probe(ProbeOnlyImages.ProbeBuffer(path), path)?.Name);
    }

    /// <summary>
    /// A raw image whose first bytes read as a VMDK descriptor is vmdk to QEMU (and then refused as an invalid
    /// descriptor); anything else before the version line, or another version, keeps it raw.
    /// </summary>
    [Theory]
    [InlineData("# Disk DescriptorFile\nversion=1\n", "vmdk")]
    [InlineData("version=2\r\n", "vmdk")]
    [InlineData("   \n  \r\n# comment\nversion=3\nCID=fffffffe\n", "vmdk")]
    [InlineData("\nversion=1\n", "raw")]
    [InlineData("version=4\n", "raw")]
    [InlineData("version=1", "raw")]
    [InlineData(" x\nversion=1\n", "raw")]
    [InlineData("# only a comment", "raw")]
    [InlineData("Version=1\n", "raw")]
    public async Task Probe_RawImageStartingWithDescriptorText_FollowsQemu(string text, string expected)
    {
        string path = _directory.File("descriptor.img");
        await using (FileStream stream = File.Create(path))
        {
            stream.Write(Encoding.ASCII.GetBytes(text));
            stream.SetLength(64 * 1024);
        }

        (int code, string stdout, string stderr) = ProbeOnlyImages.Run("qemu-img", "info", path);
        Assert.Contains(expected == "vmdk" ? "invalid VMDK image descriptor" : "file format: raw", code == 0 ? stdout : stderr, StringComparison.Ordinal);

        Assert.Equal(expected, FormatRegistry.Default.Probe(ProbeOnlyImages.ProbeBuffer(path), path)?.Name);
    }

    /// <summary>qcow and qcow2 share the magic; version 1 is qcow, 2 and up qcow2, anything else neither.</summary>
    [Theory]
    [InlineData(0u, "raw")]
    [InlineData(1u, "qcow")]
    [InlineData(2u, "qcow2")]
    [InlineData(3u, "qcow2")]
    [InlineData(4u, "qcow2")]
    public void Probe_QcowMagic_VersionPicksTheFormat(uint version, string expected)
    {
        byte[] header = new byte[512];
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x514649fb);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), version);

        Assert.Equal(expected, FormatRegistry.Default.Probe(header, "x")?.Name);
    }

    [Fact]
    public void Probe_Scores_AreQemus()
    {
        byte[] cloop = new byte[512];
        ProbeOnlyImages.Cloop().CopyTo(cloop, 0);
        Assert.Equal(2, Qimg.Formats.Cloop.CloopDriver.Instance.Probe(cloop, null));
        Assert.Equal(2, Qimg.Formats.Dmg.DmgDriver.Instance.Probe(new byte[512], "a.dmg"));
        Assert.Equal(0, Qimg.Formats.Dmg.DmgDriver.Instance.Probe(new byte[512], null));
        Assert.Equal(0, Qimg.Formats.Dmg.DmgDriver.Instance.Probe(new byte[512], ".dmg")); // QEMU wants more than the ending
        Assert.Equal(2, Qimg.Formats.Dmg.DmgDriver.Instance.Probe(new byte[512], "./.dmg"));
        Assert.Equal(100, Qimg.Formats.Bochs.BochsDriver.Instance.Probe(ProbeOnlyImages.Bochs().AsSpan(0, 512), null));
        Assert.Equal(100, Qimg.Formats.Luks.LuksDriver.Instance.Probe(ProbeOnlyImages.LuksHeader(out _).AsSpan(0, 512), null));
        Assert.Equal(1, Qimg.Formats.Raw.RawDriver.Instance.Probe(cloop, null));

        // QEMU's length checks: a header shorter than the format's header struct is not that format.
        Assert.Equal(0, Qimg.Formats.Bochs.BochsDriver.Instance.Probe(ProbeOnlyImages.Bochs().AsSpan(0, 511), null));
        Assert.Equal(2, Qimg.Formats.Cloop.CloopDriver.Instance.Probe(cloop.AsSpan(0, 20), null));
    }

    [Fact]
    public void Probe_BochsStrings_MustEndWhereQemusStrcmpEnds()
    {
        byte[] header = ProbeOnlyImages.Bochs()[..512];
        header[22] = (byte)'!'; // "Bochs Virtual HD Image!" is another string
        Assert.NotEqual("bochs", FormatRegistry.Default.Probe(header, null)?.Name);
    }

    /// <summary>
    /// A probed raw image refuses writes that would make block 0 probe as another format (QEMU's raw_co_pwritev
    /// check, which probes without a file name): now for every format QEMU knows, not only qcow2.
    /// </summary>
    [Theory]
    [InlineData("monolithicSparse.vmdk")]
    [InlineData("dynamic.vhd")]
    [InlineData("image.vdi")]
    [InlineData("image.qcow")]
    [InlineData("image.luks")]
    [InlineData("image.bochs")]
    [InlineData("image.cloop")]
    public async Task WriteProbedRaw_Block0BecomingAnotherFormat_RefusedLikeQemuIo(string name)
    {
        string source = _directory.File("block0.bin");
        await File.WriteAllBytesAsync(source, ProbeOnlyImages.ProbeBuffer(_images[name]));
        string qemuPath = _directory.File("qemu.raw");
        string path = _directory.File("qimg.raw");
        await File.WriteAllBytesAsync(qemuPath, new byte[65536]);
        await File.WriteAllBytesAsync(path, new byte[65536]);
        (_, string qemu, _) = ProbeOnlyImages.Run("qemu-io", "-c", $"write -s {source} 0 512", qemuPath);
        Assert.Equal("write failed: Operation not permitted\n", qemu);

        await using (FormatNode image = await DiskImage.OpenAsync(path, new ImageOpenOptions { ReadOnly = false }))
        {
            IOException error = await Assert.ThrowsAsync<IOException>(async () => await image.WriteAsync(0, await File.ReadAllBytesAsync(source)));
            Assert.Equal("Operation not permitted", error.Message);
        }

        Assert.Equal(new byte[65536], await File.ReadAllBytesAsync(path));
    }

    // ---------------------------------------------------------------- refusal

    [Theory]
    [MemberData(nameof(Images))]
    public async Task OpenAsync_Probed_ThrowsNotSupportedNamingTheFormat(string name, string format)
    {
        FormatNotSupportedException e = await Assert.ThrowsAsync<FormatNotSupportedException>(() => DiskImage.OpenAsync(_images[name]).AsTask());

        Assert.Equal(format, e.FormatName);
        Assert.Equal($"Image format '{format}' is not supported by qimg yet", e.Message);
    }

    [Theory]
    [InlineData("vmdk")]
    [InlineData("vpc")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qed")]
    [InlineData("qcow")]
    [InlineData("parallels")]
    [InlineData("luks")]
    [InlineData("bochs")]
    [InlineData("cloop")]
    [InlineData("dmg")]
    public async Task OpenAsync_FormatGiven_ThrowsNotSupportedEvenForARawFile(string format)
    {
        string path = _directory.File("plain.raw");
        await File.WriteAllBytesAsync(path, new byte[65536]);

        FormatNotSupportedException e = await Assert.ThrowsAsync<FormatNotSupportedException>(
            () => DiskImage.OpenAsync(path, new ImageOpenOptions { Format = format }).AsTask());

        Assert.Equal(format, e.FormatName);
    }

    [Fact]
    public async Task OpenAsync_BackingFileOfUnsupportedFormat_FailsInsteadOfReadingRaw()
    {
        string top = _directory.File("top.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-b", _images["monolithicSparse.vmdk"], "-F", "vmdk", top);

        ImageOpenException e = await Assert.ThrowsAsync<ImageOpenException>(() => DiskImage.OpenAsync(top).AsTask());

        Assert.Equal("Could not open backing file: Image format 'vmdk' is not supported by qimg yet", e.Message);
        Assert.IsType<FormatNotSupportedException>(e.InnerException);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public async Task ConvertAsync_UnsupportedSource_FailsAndWritesNoTarget(string name, string format)
    {
        string target = _directory.File("out.qcow2");

        OperationException e = await Assert.ThrowsAsync<OperationException>(() => ImageConverter.ConvertAsync(new ConvertImageOptions
        {
            Sources = [_images[name]],
            Target = target,
            TargetFormat = "qcow2",
        }));

        Assert.Equal($"Could not open '{_images[name]}': Image format '{format}' is not supported by qimg yet", e.Message);
        Assert.False(File.Exists(target));
    }

    [Theory]
    [InlineData("vmdk")]
    [InlineData("vpc")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qed")]
    [InlineData("qcow")]
    [InlineData("parallels")]
    [InlineData("luks")]
    public async Task CreateAndConvert_ToFormatQemuCanCreate_FailNotSupportedAndWriteNothing(string format)
    {
        string source = _directory.File("source.raw");
        await File.WriteAllBytesAsync(source, new byte[65536]);
        string target = _directory.File("out." + format);

        OperationException convert = await Assert.ThrowsAsync<OperationException>(() => ImageConverter.ConvertAsync(new ConvertImageOptions
        {
            Sources = [source],
            Target = target,
            TargetFormat = format,
        }));
        OperationException create = await Assert.ThrowsAsync<OperationException>(
            () => ImageCreator.CreateAsync(new CreateImageOptions { FileName = target, Format = format, Size = 1 << 20 }).AsTask());
        OperationException help = Assert.Throws<OperationException>(() => ImageCreator.GetOptionHelp(format, null));

        foreach (OperationException e in (OperationException[])[convert, create, help])
        {
            Assert.Equal($"Image format '{format}' is not supported by qimg yet", e.Message);
            Assert.Equal(format, Assert.IsType<FormatNotSupportedException>(e.InnerException).FormatName);
        }

        Assert.False(File.Exists(target));
    }

    [Theory]
    [InlineData("bochs")]
    [InlineData("cloop")]
    [InlineData("dmg")]
    public async Task Create_FormatQemuCannotCreate_FailsInQemusWords(string format)
    {
        string target = _directory.File("out." + format);
        (int _, string _, string qemu) = ProbeOnlyImages.Run("qemu-img", "create", "-f", format, target, "1M");

        OperationException e = await Assert.ThrowsAsync<OperationException>(
            () => ImageCreator.CreateAsync(new CreateImageOptions { FileName = target, Format = format, Size = 1 << 20 }).AsTask());

        Assert.Equal($"qemu-img: {target}: {e.Message}\n", qemu);
        Assert.False(File.Exists(target));
    }
}
