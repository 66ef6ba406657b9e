using Microsoft.Win32.SafeHandles;
using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Options;

namespace Qimg.Protocols.File;

/// <summary>The "file" protocol: a local file or block device (QEMU's file-posix).</summary>
public sealed class FileProtocol : ProtocolDriver
{
    public static FileProtocol Instance { get; } = new();

    private FileProtocol()
    {
    }

    public override string Name => "file";

    public override IReadOnlyList<OptionDescriptor> CreateOptions { get; } =
    [
        new("size", OptionType.Size, "Virtual disk size"),
        new("preallocation", OptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
        new("nocow", OptionType.Bool, "Turn off copy-on-write (valid only on btrfs)"),
        new("extent_size_hint", OptionType.Size, "Extent size hint for the image file, 0 to disable"),
    ];

    public override bool Handles(string fileName) => fileName.StartsWith("file:", StringComparison.Ordinal);

    /// <summary>Strips a "file:" prefix.</summary>
    public static string PathOf(string fileName) => fileName.StartsWith("file:", StringComparison.Ordinal) ? fileName[5..] : fileName;

    public override ValueTask<BlockNode> OpenAsync(string fileName, ProtocolOpenOptions options, CancellationToken cancellationToken = default)
    {
        string path = PathOf(fileName);
        SafeFileHandle handle = OpenHandle(path, fileName, options.ReadOnly ? FileAccess.Read : FileAccess.ReadWrite, FileMode.Open);
        return ValueTask.FromResult<BlockNode>(new FileNode(fileName, handle, options));
    }

    public override ValueTask CreateAsync(string fileName, long size, OptionValues options, CancellationToken cancellationToken = default)
    {
        string path = PathOf(fileName);
        PreallocationMode preallocation = PreallocationMode.Off;
        if (options.GetString("preallocation") is string mode && (!PreallocationModeNames.TryParse(mode, out preallocation) || preallocation == PreallocationMode.Metadata))
        {
            throw new OptionException($"Invalid parameter '{mode}'");
        }

        using SafeFileHandle handle = OpenHandle(path, fileName, FileAccess.ReadWrite, FileMode.OpenOrCreate);
        RandomAccess.SetLength(handle, 0);
        FileNode.Preallocate(handle, 0, size, preallocation, fileName);
        return default;
    }

    internal static SafeFileHandle OpenHandle(string path, string displayName, FileAccess access, FileMode mode)
    {
        try
        {
            return System.IO.File.OpenHandle(path, mode, access, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (FileNotFoundException)
        {
            throw new ImageOpenException($"Could not open '{displayName}': No such file or directory");
        }
        catch (DirectoryNotFoundException)
        {
            throw new ImageOpenException($"Could not open '{displayName}': No such file or directory");
        }
        catch (UnauthorizedAccessException)
        {
            throw new ImageOpenException($"Could not open '{displayName}': Permission denied");
        }
        catch (IOException e)
        {
            throw new ImageOpenException($"Could not open '{displayName}': {e.Message}", e);
        }
    }
}
