using Qimg.Formats;
using Qimg.Formats.Qcow2;
using Qimg.Options;
using Qimg.Protocols.File;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Formats.Qcow2;

/// <summary>Images qimg creates are byte-identical to qemu-img's for the same options.</summary>
public sealed class Qcow2DriverCreateTests : IDisposable
{
    private readonly TestDirectory _reference = new();
    private readonly TestDirectory _actual = new();

    public void Dispose()
    {
        _reference.Dispose();
        _actual.Dispose();
    }

    public static TheoryData<string, string> Matrix()
    {
        var data = new TheoryData<string, string>();
        foreach (string compat in new[] { "0.10", "1.1" })
        {
            foreach (string size in new[] { "512", "4k", "64k", "2M" })
            {
                data.Add($"compat={compat},cluster_size={size}", "100M");
            }
        }

        foreach (string bits in new[] { "1", "2", "4", "8", "16", "32", "64" })
        {
            data.Add($"refcount_bits={bits}", "1G");
            data.Add($"refcount_bits={bits},cluster_size=512", "64M");
        }

        data.Add("extended_l2=on", "1G");
        data.Add("extended_l2=on,cluster_size=16k", "1G");
        data.Add("lazy_refcounts=on", "1G");
        data.Add("compression_type=zstd", "1G");
        data.Add("", "0");
        data.Add("", "1000");
        data.Add("", "3T");
        data.Add("cluster_size=512", "5G");
        foreach (string mode in new[] { "metadata", "falloc", "full" })
        {
            data.Add($"preallocation={mode}", "3M");
            data.Add($"preallocation={mode},cluster_size=4k", "5M");
            data.Add($"preallocation={mode},compat=0.10", "1M");
            data.Add($"preallocation={mode},extended_l2=on", "3M");
            data.Add($"preallocation={mode},refcount_bits=1,cluster_size=512", "2M");
        }

        data.Add("preallocation=metadata,cluster_size=512", "40M");
        data.Add("preallocation=falloc,refcount_bits=2,cluster_size=1k", "20M");
        data.Add("backing_file=base.qcow2,backing_fmt=qcow2", "1G");
        data.Add("backing_file=base.qcow2,backing_fmt=raw,compat=0.10", "10M");
        data.Add("backing_file=base.qcow2,backing_fmt=qcow2,extended_l2=on,preallocation=metadata", "10M");
        data.Add("backing_file=base.qcow2,backing_fmt=qcow2,cluster_size=512", "10M");
        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Create_SameOptions_ByteIdenticalToQemu(string options, string size)
    {
        string reference = _reference.File("image.qcow2");
        string actual = _actual.File("image.qcow2");
        var args = new List<string> { "create", "-q", "-f", "qcow2", "-u" };
        if (options.Length > 0)
        {
            args.AddRange(["-o", options]);
        }

        args.AddRange([reference, size]);
        QemuTools.Img([.. args]);

        await CreateAsync(actual, options, size);
        AssertSameFile(reference, actual);
    }

    [Theory]
    [InlineData("")]
    [InlineData("data_file_raw=on")]
    [InlineData("preallocation=metadata")]
    [InlineData("preallocation=falloc,data_file_raw=on")]
    [InlineData("preallocation=full")]
    public async Task Create_DataFile_ByteIdenticalToQemu(string options)
    {
        Assert.Equal(_reference.Path.Length, _actual.Path.Length);
        string prefix = options.Length > 0 ? options + "," : string.Empty;
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", prefix + "data_file=" + _reference.File("d.raw"), _reference.File("image.qcow2"), "3M");
        await CreateAsync(_actual.File("image.qcow2"), prefix + "data_file=" + _actual.File("d.raw"), "3M");

        byte[] expected = File.ReadAllBytes(_reference.File("image.qcow2"));
        byte[] referenceName = System.Text.Encoding.UTF8.GetBytes(_reference.Path);
        byte[] actualName = System.Text.Encoding.UTF8.GetBytes(_actual.Path);
        int at = expected.AsSpan().IndexOf(referenceName);
        Assert.True(at > 0);
        actualName.CopyTo(expected, at);
        AssertSameBytes(expected, File.ReadAllBytes(_actual.File("image.qcow2")));
        AssertSameFile(_reference.File("d.raw"), _actual.File("d.raw"));
    }

    [Theory]
    [InlineData("cluster_size=1000", "Cluster size must be a power of two between 512 and 2048k")]
    [InlineData("cluster_size=4M", "Cluster size must be a power of two between 512 and 2048k")]
    [InlineData("compat=0.9", "Parameter 'version' does not accept value '0.9'")]
    [InlineData("refcount_bits=3", "Refcount width must be a power of two and may not exceed 64 bits")]
    [InlineData("refcount_bits=128", "Refcount width must be a power of two and may not exceed 64 bits")]
    [InlineData("compat=0.10,refcount_bits=8", "Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)")]
    [InlineData("compat=0.10,lazy_refcounts=on", "Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)")]
    [InlineData("extended_l2=on,cluster_size=8k", "Extended L2 entries are only supported with cluster sizes of at least 16384 bytes")]
    [InlineData("compat=0.10,extended_l2=on", "Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)")]
    [InlineData("compat=0.10,data_file=x.raw", "External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)")]
    [InlineData("data_file_raw=on", "data-file-raw requires data-file")]
    [InlineData("compression_type=foo", "Parameter 'compression-type' does not accept value 'foo'")]
    [InlineData("compression_type=zstd,compat=0.10", "Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)")]
    [InlineData("backing_fmt=qcow2", "Backing format cannot be used without backing file")]
    [InlineData("preallocation=foo", "Parameter 'preallocation' does not accept value 'foo'")]
    [InlineData("preallocation=metadata,backing_file=a.qcow2,backing_fmt=qcow2", "Backing file and preallocation can only be used at the same time if extended_l2 is on")]
    [InlineData("encryption=on", "Parameter 'encrypt.key-secret' is required for cipher")]
    [InlineData("encrypt.format=luks", "Parameter 'encrypt.key-secret' is required for cipher")]
    [InlineData("data_file_raw=on,data_file=y.raw,backing_file=a.qcow2,backing_fmt=qcow2", "Backing file and data-file-raw cannot be used at the same time")]
    public async Task Create_InvalidOptions_FailsLikeQemuAndDeletesFile(string options, string message)
    {
        string reference = _reference.File("t.qcow2");
        (int code, _, string stderr) = QemuTools.Run("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-o", options, reference, "1M");
        Assert.Equal(1, code);
        Assert.Equal($"qemu-img: {reference}: {message}\n", stderr);

        string actual = _actual.File("t.qcow2");
        File.WriteAllText(actual, "old contents");
        OptionException e = await Assert.ThrowsAsync<OptionException>(() => CreateAsync(actual, options, "1M"));
        Assert.Equal(message, e.Message);
        Assert.False(File.Exists(actual));
    }

    [Fact]
    public async Task Create_Encrypted_IsRefused()
    {
        string actual = _actual.File("enc.qcow2");
        OptionException e = await Assert.ThrowsAsync<OptionException>(() => CreateAsync(actual, "encrypt.format=luks,encrypt.key-secret=sec0", "1M"));
        Assert.Contains("not supported", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(actual));
    }

    [Fact]
    public async Task Create_TooLarge_FailsWithFileTooLarge()
    {
        string actual = _actual.File("big.qcow2");
        IOException e = await Assert.ThrowsAnyAsync<IOException>(() => CreateAsync(actual, "", "1E"));
        Assert.Equal(27, e.HResult);
        Assert.False(File.Exists(actual));
    }

    [Fact]
    public void CreateOptions_ListsQemuOptionsInOrder()
    {
        string[] names = Qcow2Driver.Instance.CreateOptions.Select(o => o.Name).ToArray();
        Assert.Equal(
            ["encryption", "encrypt.format", "encrypt.key-secret", "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg",
             "encrypt.ivgen-hash-alg", "encrypt.hash-alg", "encrypt.iter-time", "cluster_size", "extended_l2", "preallocation",
             "compression_type", "size", "compat", "backing_file", "backing_fmt", "data_file", "data_file_raw", "lazy_refcounts",
             "refcount_bits"],
            names);

        // Every option with its help text, as qemu-img prints them (sorted, merged with the file protocol's).
        string help = QemuTools.Img("create", "-f", "qcow2", "-o", "help");
        foreach (var option in Qcow2Driver.Instance.CreateOptions)
        {
            Assert.Contains($"{option.Name}=<{option.TypeHint}>", help, StringComparison.Ordinal);
            Assert.Contains(option.Help, help, StringComparison.Ordinal);
        }
    }

    internal static async Task CreateAsync(string path, string options, string size)
    {
        var values = new OptionValues();
        foreach (string pair in options.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int equals = pair.IndexOf('=');
            values.Set(pair[..equals], pair[(equals + 1)..]);
        }

        Assert.Equal(QemuSize.ParseResult.Ok, QemuSize.TryParse(size, out ulong bytes));
        var request = new ImageCreateRequest(path, (long)bytes, values, FileProtocol.Instance, FormatRegistry.Default, Qimg.Block.ImplicitOpenPolicy.Permissive);
        await Qcow2Driver.Instance.CreateAsync(request);
    }

    private static void AssertSameFile(string expected, string actual) =>
        AssertSameBytes(File.ReadAllBytes(expected), File.ReadAllBytes(actual));

    private static void AssertSameBytes(byte[] expected, byte[] actual)
    {
        int index = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(index == expected.Length && index == actual.Length, $"Files differ at byte {index} (lengths {expected.Length} and {actual.Length})");
    }
}
