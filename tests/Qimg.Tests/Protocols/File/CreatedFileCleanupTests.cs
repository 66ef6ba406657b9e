using Qimg.Operations.Create;
using Qimg.Options;
using Qimg.Protocols;
using Qimg.Protocols.File;
using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>
/// What a failed create may remove: the regular file this run created, through the directory it was created in,
/// and nothing a name points at after it changed (issue 7, section 1).
/// </summary>
public sealed class CreatedFileCleanupTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private static async Task<CreatedFile?> CreateAsync(string path) =>
        await FileProtocol.Instance.CreateTrackedAsync(path, 0, new OptionValues(), null, CancellationToken.None);

    [Fact]
    public async Task DeleteQuietly_RemovesTheFileItCreated()
    {
        string path = _directory.File("new.img");
        using CreatedFile? created = await CreateAsync(path);

        Assert.NotNull(created);
        created.DeleteQuietly();

        Assert.False(System.IO.File.Exists(path));
    }

    [Fact]
    public async Task DeleteQuietly_NameSwappedForSymlinkToAnotherFile_RemovesNothing()
    {
        string path = _directory.File("new.img");
        string other = _directory.File("precious.img");
        System.IO.File.WriteAllText(other, "keep me");
        using CreatedFile? created = await CreateAsync(path);
        Assert.NotNull(created);

        // Someone replaces the new file's name by a link to another file before the cleanup runs.
        System.IO.File.Delete(path);
        System.IO.File.CreateSymbolicLink(path, other);
        created.DeleteQuietly();

        Assert.Equal("keep me", System.IO.File.ReadAllText(other));
        Assert.NotNull(new FileInfo(path).LinkTarget);
    }

    [Fact]
    public async Task DeleteQuietly_NameSwappedForAnotherRegularFile_RemovesNothing()
    {
        string path = _directory.File("new.img");
        string other = _directory.File("other.img");
        using CreatedFile? created = await CreateAsync(path);
        Assert.NotNull(created);

        System.IO.File.WriteAllText(other, "keep me");
        System.IO.File.Move(other, path, overwrite: true);
        created.DeleteQuietly();

        Assert.Equal("keep me", System.IO.File.ReadAllText(path));
    }

    [Fact]
    public async Task DeleteQuietly_DirectoryRenamedMeanwhile_RemovesOnlyTheCreatedEntry()
    {
        string directory = _directory.File("d");
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, "new.img");
        using CreatedFile? created = await CreateAsync(path);
        Assert.NotNull(created);

        // The directory moves away and a new one with a file of the same name takes its place.
        Directory.Move(directory, _directory.File("moved"));
        Directory.CreateDirectory(directory);
        System.IO.File.WriteAllText(path, "keep me");
        created.DeleteQuietly();

        Assert.Equal("keep me", System.IO.File.ReadAllText(path));
        Assert.False(System.IO.File.Exists(_directory.File("moved/new.img")));
    }

    [Fact]
    public async Task CreateTracked_NameIsASymlink_NothingToRemove()
    {
        string target = _directory.File("target.img");
        System.IO.File.WriteAllText(target, "old");
        string link = _directory.File("link.img");
        System.IO.File.CreateSymbolicLink(link, target);

        using CreatedFile? created = await CreateAsync(link);

        // The target was emptied, as QEMU's create empties it; the link itself is not something this run created.
        Assert.Null(created);
        Assert.Equal(0, new FileInfo(target).Length);
    }

    [Fact]
    public async Task CreateTracked_CharacterDevice_NothingToRemove()
    {
        string node = _directory.File("null");
        Assert.Equal(0, QemuTools.Run("mknod", "-m", "666", node, "c", "1", "3").ExitCode);

        using CreatedFile? created = await CreateAsync(node);

        Assert.Null(created);
        Assert.Equal("character special file\n", QemuTools.Run("stat", "-c", "%F", node).Stdout);
    }

    [Fact]
    public async Task Qcow2Create_InvalidOption_RemovesTheNewFileLikeQemu()
    {
        string path = _directory.File("bad.qcow2");
        await Assert.ThrowsAnyAsync<Exception>(async () => await ImageCreator.CreateAsync(
            new CreateImageOptions { FileName = path, Format = "qcow2", Size = 1 << 20, Options = "cluster_size=3" }));

        Assert.False(System.IO.File.Exists(path));
    }

    [Fact]
    public async Task Qcow2Create_LockedDataFile_IsNotRemoved()
    {
        // The data file is in use by someone else: its create fails, so it was not created by this run.
        string image = _directory.File("x.qcow2");
        string data = _directory.File("data.raw");
        System.IO.File.WriteAllBytes(data, new byte[4096]);
        await using (Qimg.Block.BlockNode holder = await FileProtocol.Instance.OpenAsync(data, new ProtocolOpenOptions(false, Qimg.Block.CacheMode.Writeback)))
        {
            holder.SetPermissions(Qimg.Block.PermissionPair.ForOpen(writable: true, noIo: false, resize: false, noShare: true));
            await Assert.ThrowsAnyAsync<Exception>(async () => await ImageCreator.CreateAsync(
                new CreateImageOptions { FileName = image, Format = "qcow2", Size = 1 << 20, Options = "data_file=" + data }));
        }

        Assert.True(System.IO.File.Exists(data));
        Assert.Equal(4096, new FileInfo(data).Length);
        Assert.False(System.IO.File.Exists(image));
    }
}
