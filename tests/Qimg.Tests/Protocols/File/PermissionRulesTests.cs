using Qimg.Block;

using Qimg.Tests.TestSupport;

namespace Qimg.Tests.Protocols.File;

/// <summary>
/// QEMU's permission propagation (PermissionPair) checked against the lock bytes real qemu-io processes take on the
/// files of qcow2 images and backing chains, so that the rules are right for every format, not only raw.
/// </summary>
public sealed class PermissionRulesTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    /// <summary>The lock bytes QEMU's file-posix takes for a permission pair (100 + i held, 200 + i not shared).</summary>
    private static List<long> Bytes(PermissionPair pair)
    {
        var bytes = new List<long>();
        for (int i = 0; i < 4; i++)
        {
            if (((int)pair.Perm & (1 << i)) != 0)
            {
                bytes.Add(100 + i);
            }
        }

        for (int i = 0; i < 4; i++)
        {
            if (((int)pair.Shared & (1 << i)) == 0)
            {
                bytes.Add(200 + i);
            }
        }

        return bytes;
    }

    private static PermissionPair ForceShare(PermissionPair pair, bool forceShare) =>
        forceShare ? pair with { Shared = BlockPermissions.All } : pair;

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Qcow2WithBackingChain_SameLocksAsQemuIo(bool readOnly, bool forceShare)
    {
        string bottom = _directory.File("bottom.raw");
        string middle = _directory.File("middle.qcow2");
        string top = _directory.File("top.qcow2");
        Tools.Check("qemu-img", "create", "-q", "-f", "raw", bottom, "1M");
        Tools.Check("qemu-img", "create", "-q", "-f", "qcow2", "-b", bottom, "-F", "raw", middle);
        Tools.Check("qemu-img", "create", "-q", "-f", "qcow2", "-b", middle, "-F", "qcow2", top);
        var arguments = new List<string> { "-f", "qcow2" };
        if (readOnly)
        {
            arguments.Add("-r");
        }

        if (forceShare)
        {
            arguments.Add("-U");
        }

        // qemu-io opens like blk_new_open with its flags; each qcow2 stores data and metadata in its file; backing
        // files get the copy-on-write share; raw passes its users' permissions through.
        PermissionPair user = PermissionPair.ForOpen(!readOnly, noIo: false, resize: false, noShare: false);
        PermissionPair topFile = user.ForStorageChild(ChildRole.Data | ChildRole.Metadata, !readOnly, noIo: false);
        PermissionPair middleImage = user.ForCowChild();
        PermissionPair middleFile = middleImage.ForStorageChild(ChildRole.Data | ChildRole.Metadata, parentWritable: false, noIo: false);
        PermissionPair bottomFile = middleImage.ForCowChild().ForFilteredChild();

        List<long> topLocks, middleLocks, bottomLocks;
        using (HeldImage.Start(top, [.. arguments]))
        {
            // HeldImage waits for the top file's locks; QEMU locks the backing files after it, so wait (up to 10 s)
            // for the chain to settle before taking what is locked (this raced on a loaded machine).
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                topLocks = Tools.LockedBytes(top);
                middleLocks = Tools.LockedBytes(middle);
                bottomLocks = Tools.LockedBytes(bottom);
                bool settled = topLocks.SequenceEqual(Bytes(ForceShare(topFile, forceShare)))
                               && middleLocks.SequenceEqual(Bytes(ForceShare(middleFile, forceShare)))
                               && bottomLocks.SequenceEqual(Bytes(ForceShare(bottomFile, forceShare)));
                if (settled || clock.Elapsed > TimeSpan.FromSeconds(10))
                {
                    break;
                }

                Thread.Sleep(20);
            }
        }

        Assert.Equal(topLocks, Bytes(ForceShare(topFile, forceShare)));
        Assert.Equal(middleLocks, Bytes(ForceShare(middleFile, forceShare)));
        Assert.Equal(bottomLocks, Bytes(ForceShare(bottomFile, forceShare)));
    }

    [Fact]
    public void Names_AreQemuPermissionNames()
    {
        Assert.Equal("consistent read, write, write unchanged, resize", PermissionPair.Names(BlockPermissions.All));
        Assert.Equal("write", PermissionPair.Names(BlockPermissions.Write));
    }

    [Fact]
    public void ForOpen_InfoOnQcow2_LocksOnlyTheUnsharedBytes()
    {
        // qemu-img info opens with BDRV_O_NO_IO: a qcow2 file then holds no permission but still refuses writers.
        PermissionPair user = PermissionPair.ForOpen(writable: false, noIo: true, resize: false, noShare: false);
        PermissionPair file = user.ForStorageChild(ChildRole.Data | ChildRole.Metadata, parentWritable: false, noIo: true);

        Assert.Equal([201L, 203L], Bytes(file));
    }
}
