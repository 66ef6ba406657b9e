using Qimg.Block;
using Qimg.Formats.Raw;
using Qimg.Interop;
using Qimg.Protocols.File;

namespace Qimg.Copy;

/// <summary>
/// Copy offloading for convert -C: when both sides are raw images in local files, data ranges are copied with
/// copy_file_range(2) instead of through user space. Anything else falls back to reading and writing, as QEMU does
/// when a driver cannot offload.
/// </summary>
internal static class CopyOffload
{
    /// <summary>Copies the range in the kernel and returns true, or returns false when offloading is not possible here.</summary>
    public static ValueTask<bool> TryCopyAsync(BlockNode source, long sourceOffset, BlockNode target, long targetOffset, long length, CancellationToken cancellationToken)
    {
        if (source is not RawImage { File: FileNode sourceFile } sourceRaw || target is not RawImage { File: FileNode targetFile } targetRaw || target.IsReadOnly)
        {
            return ValueTask.FromResult(false);
        }

        // raw's offset option shifts guest offsets into the file.
        sourceOffset += sourceRaw.Offset;
        targetOffset += targetRaw.Offset;

        // Past the end of the source file the range reads as zero; leave such tails to the normal path.
        if (sourceOffset + length > sourceFile.FileLength)
        {
            return ValueTask.FromResult(false);
        }

        return ValueTask.FromResult(Copy(sourceFile, sourceOffset, targetFile, targetOffset, length));
    }

    private static unsafe bool Copy(FileNode source, long sourceOffset, FileNode target, long targetOffset, long length)
    {
        long inOffset = sourceOffset;
        long outOffset = targetOffset;
        long remaining = length;
        while (remaining > 0)
        {
            nint copied = Libc.CopyFileRange(source.Handle, &inOffset, target.Handle, &outOffset, (nuint)Math.Min(remaining, 1L << 30), 0);
            if (copied <= 0)
            {
                // Not supported between these files (or nothing copied): let the caller copy what is left normally.
                return remaining == length ? false : throw new IOException("copy_file_range stopped part-way");
            }

            remaining -= copied;
        }

        target.NoteWrittenUpTo(targetOffset + length);
        return true;
    }
}
