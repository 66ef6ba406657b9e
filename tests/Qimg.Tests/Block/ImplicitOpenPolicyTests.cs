using Qimg.Block;
using Qimg.Formats;
using Qimg.Protocols.File;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Block;

/// <summary>
/// <see cref="ImplicitOpenPolicy.RestrictTo"/> confines the open itself: every way out of the directory (links on any
/// component, "..", absolute names, json: names, links swapped during the open) is refused, with openat2 and with the
/// component walk used where openat2 is missing; links and subdirectories that stay inside work.
/// </summary>
public sealed partial class ImplicitOpenPolicyTests : IDisposable
{
    private const byte Outside = 0xee;
    private const byte Inner = 0x22;
    private const byte Inside = 0x11;

    private readonly string _root = Directory.CreateTempSubdirectory("qimg-policy-").FullName;

    public ImplicitOpenPolicyTests()
    {
        Directory.CreateDirectory(Imgs);
        Directory.CreateDirectory(Path.Combine(_root, "outside"));
        Directory.CreateDirectory(Path.Combine(Imgs, "sub"));
        File.WriteAllBytes(Path.Combine(_root, "outside", "secret.raw"), Fill(Outside));
        File.WriteAllBytes(Path.Combine(_root, "outside", "inner.raw"), Fill(Outside));
        File.WriteAllBytes(Path.Combine(Imgs, "inside.raw"), Fill(Inside));
        File.WriteAllBytes(Path.Combine(Imgs, "sub", "inner.raw"), Fill(Inner));
        File.CreateSymbolicLink(Path.Combine(Imgs, "dirlink"), "../outside");
        File.CreateSymbolicLink(Path.Combine(Imgs, "chainlink.raw"), "dirlink/secret.raw");
        File.CreateSymbolicLink(Path.Combine(Imgs, "directlink.raw"), "../outside/secret.raw");
        File.CreateSymbolicLink(Path.Combine(Imgs, "abslink.raw"), Path.Combine(_root, "outside", "secret.raw"));
        File.CreateSymbolicLink(Path.Combine(Imgs, "innerlink"), "sub");
        File.CreateSymbolicLink(Path.Combine(Imgs, "insidelink.raw"), "sub/inner.raw");
        File.CreateSymbolicLink(Path.Combine(Imgs, "uplink.raw"), "sub/../inside.raw");
    }

    private string Imgs => Path.Combine(_root, "imgs");

    public static TheoryData<string, bool> Escapes => new()
    {
        { "dirlink/secret.raw", false },
        { "dirlink/secret.raw", true },
        { "chainlink.raw", false },
        { "chainlink.raw", true },
        { "directlink.raw", false },
        { "directlink.raw", true },
        { "abslink.raw", false },
        { "abslink.raw", true },
        { "../outside/secret.raw", false },
        { "sub/../../outside/secret.raw", true },
        { "innerlink/../../outside/secret.raw", false },
        { "innerlink/../../outside/secret.raw", true },
        { "{root}/outside/secret.raw", false },
        { "{root}/imgs/dirlink/secret.raw", false },
        { "{root}/imgs/dirlink/secret.raw", true },
        { "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"{root}/imgs/dirlink/secret.raw\"}}", false },
        { "json:{'driver':'raw','file':{'filename':'{root}/outside/secret.raw'}}", true },
    };

    [Theory]
    [MemberData(nameof(Escapes))]
    public async Task RestrictTo_BackingNameLeadingOutside_IsRefused(string backing, bool walk)
    {
        string top = CreateTop(backing.Replace("{root}", _root, StringComparison.Ordinal));
        await WithWalk(walk, async () =>
        {
            var e = await Assert.ThrowsAsync<ImplicitOpenDeniedException>(async () => await ReadFirstByteAsync(top, Restricted()));
            Assert.Equal(ImplicitOpenKind.Backing, e.Request.Kind);
        });
    }

    [Theory]
    [InlineData("inside.raw", Inside, false)]
    [InlineData("inside.raw", Inside, true)]
    [InlineData("sub/inner.raw", Inner, false)]
    [InlineData("innerlink/inner.raw", Inner, false)]
    [InlineData("innerlink/inner.raw", Inner, true)]
    [InlineData("insidelink.raw", Inner, false)]
    [InlineData("insidelink.raw", Inner, true)]
    [InlineData("uplink.raw", Inside, false)]
    [InlineData("uplink.raw", Inside, true)]
    [InlineData("sub/../inside.raw", Inside, true)]
    [InlineData("{root}/imgs/sub/inner.raw", Inner, true)]
    public async Task RestrictTo_BackingInside_Opens(string backing, byte expected, bool walk)
    {
        string top = CreateTop(backing.Replace("{root}", _root, StringComparison.Ordinal));
        await WithWalk(walk, async () => Assert.Equal(expected, await ReadFirstByteAsync(top, Restricted())));
    }

    [Theory]
    [InlineData("dirlink/secret.raw")]
    [InlineData("chainlink.raw")]
    [InlineData("../outside/secret.raw")]
    public async Task RestrictTo_InfoBackingChainLeadingOutside_IsRefused(string backing)
    {
        // info --backing-chain opens the chain one image at a time; each backing file still passes the policy.
        string top = CreateTop(backing);
        var options = new ImageOpenOptions { Policy = Restricted() };
        var e = await Assert.ThrowsAsync<Qimg.Operations.OperationException>(async () =>
            await Qimg.Operations.Info.ImageInfoReader.CollectAsync(new Qimg.Operations.ImageSource(top, "qcow2", null), top, options, backingChain: true));
        Assert.True(Find<ImplicitOpenDeniedException>(e) is { Request.Kind: ImplicitOpenKind.Backing }, e.ToString());

        string inside = CreateTop("sub/inner.raw");
        var chain = await Qimg.Operations.Info.ImageInfoReader.CollectAsync(new Qimg.Operations.ImageSource(inside, "qcow2", null), inside, options, backingChain: true);
        Assert.Equal(2, chain.Count);
    }

    [Fact]
    public async Task RestrictTo_OpenedThroughLinkToDirectory_StillOpensInsideNames()
    {
        string top = CreateTop("sub/inner.raw");
        string alias = Path.Combine(_root, "alias");
        File.CreateSymbolicLink(alias, "imgs");
        Assert.Equal(Inner, await ReadFirstByteAsync(Path.Combine(alias, "top.qcow2"), Restricted()));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RestrictTo_DataFileThroughDirectoryLink_IsRefused(bool walk)
    {
        string top = Path.Combine(Imgs, "data.qcow2");
        QemuTools.Img("create", "-q", "-f", "qcow2", "-o", "data_file=" + Path.Combine(Imgs, "data.raw"), top, "64k");
        QemuTools.Img("amend", "-o", "data_file=" + Path.Combine(Imgs, "dirlink", "secret.raw"), top);
        await WithWalk(walk, async () =>
        {
            var e = await Assert.ThrowsAnyAsync<IOException>(async () => await ReadFirstByteAsync(top, Restricted()));
            Assert.True(Find<ImplicitOpenDeniedException>(e) is { Request.Kind: ImplicitOpenKind.DataFile }, e.ToString());
        });

        QemuTools.Img("amend", "-o", "data_file=" + Path.Combine(Imgs, "innerlink", "inner.raw"), top);
        await WithWalk(walk, async () =>
        {
            await using FormatNode image = await DiskImage.OpenAsync(top, new ImageOpenOptions { Policy = Restricted() });
            Assert.Equal(65536, image.Length);
        });
    }

    /// <summary>
    /// A link flipped between an inside and an outside target while opens run: every open either reads the inside
    /// file or is refused, never reads the outside file (a check of the name separate from the open lets it through).
    /// </summary>
    [Theory]
    [InlineData("flip.raw", "sub/inner.raw", "../outside/secret.raw", false)]
    [InlineData("flip.raw", "sub/inner.raw", "../outside/secret.raw", true)]
    [InlineData("flipdir/inner.raw", "sub", "../outside", false)]
    [InlineData("flipdir/inner.raw", "sub", "../outside", true)]
    public async Task RestrictTo_LinkSwappedDuringOpen_NeverReadsOutside(string backing, string insideTarget, string outsideTarget, bool walk)
    {
        string link = Path.Combine(Imgs, backing.Split('/')[0]);
        File.CreateSymbolicLink(link, insideTarget);
        string top = CreateTop(backing);
        using var stop = new CancellationTokenSource();
        var flipper = Task.Run(() =>
        {
            string temporary = link + ".new";
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                File.Delete(temporary);
                File.CreateSymbolicLink(temporary, i % 2 == 0 ? outsideTarget : insideTarget);
                // rename(2) swaps the link atomically (File.Move follows a link to a directory).
                Assert.Equal(0, Rename(temporary, link));
            }
        });

        int opened = 0;
        int refused = 0;
        try
        {
            await WithWalk(walk, async () =>
            {
                for (int i = 0; i < 400; i++)
                {
                    try
                    {
                        Assert.Equal(Inner, await ReadFirstByteAsync(top, Restricted()));
                        opened++;
                    }
                    catch (ImplicitOpenDeniedException)
                    {
                        refused++;
                    }
                }
            });
        }
        finally
        {
            stop.Cancel();
            await flipper;
        }

        Assert.Equal(400, opened + refused);
        Assert.True(refused > 0, "the swap never made an open fail: the race was not exercised");
    }

    [Fact]
    public async Task Permissive_JsonBackingName_IsFollowed()
    {
        string top = CreateTop($"json:{{'driver':'raw','file':{{'driver':'file','filename':'{_root}/outside/secret.raw'}}}}");
        Assert.Equal(Outside, await ReadFirstByteAsync(top, ImplicitOpenPolicy.Permissive));
    }

    [Fact]
    public async Task DenyAll_JsonBackingName_IsRefused()
    {
        string top = CreateTop($"json:{{\"driver\":\"raw\",\"file\":{{\"filename\":\"{Imgs}/inside.raw\"}}}}");
        await Assert.ThrowsAsync<ImplicitOpenDeniedException>(async () => await ReadFirstByteAsync(top, ImplicitOpenPolicy.DenyAll));
    }

    [Fact]
    public async Task RestrictTo_JsonBackingNameInside_Opens()
    {
        string top = CreateTop($"json:{{\"driver\":\"raw\",\"file\":{{\"filename\":\"{Imgs}/innerlink/inner.raw\"}}}}");
        Assert.Equal(Inner, await ReadFirstByteAsync(top, Restricted()));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static ImplicitOpenPolicy RestrictedTo(string directory) => ImplicitOpenPolicy.RestrictTo(directory, ["raw", "qcow2"]);

    private ImplicitOpenPolicy Restricted() => RestrictedTo(Imgs);

    private static byte[] Fill(byte value)
    {
        byte[] data = new byte[65536];
        Array.Fill(data, value);
        return data;
    }

    private string CreateTop(string backing)
    {
        string top = Path.Combine(Imgs, "top.qcow2");
        File.Delete(top);
        QemuTools.Img("create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", top, "64k");
        return top;
    }

    private static async Task<byte> ReadFirstByteAsync(string fileName, ImplicitOpenPolicy policy)
    {
        await using FormatNode image = await DiskImage.OpenAsync(fileName, new ImageOpenOptions { Policy = policy });
        byte[] buffer = new byte[512];
        await image.ReadAsync(0, buffer);
        return buffer[0];
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "rename", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int Rename(string from, string to);

    private static async Task WithWalk(bool walk, Func<Task> body)
    {
        ConfinedOpen.ForceWalk = walk;
        try
        {
            await body();
        }
        finally
        {
            ConfinedOpen.ForceWalk = false;
        }
    }

    private static T? Find<T>(Exception? e)
        where T : Exception
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }
        }

        return null;
    }
}
