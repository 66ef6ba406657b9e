using Microsoft.Win32.SafeHandles;
using Qimg.Block;
using Qimg.Buffers;
using Qimg.Interop;

namespace Qimg.Protocols.File;

/// <summary>
/// Resizing a regular file with preallocation, with QEMU's semantics and messages (file-posix.c
/// <c>handle_aiocb_truncate</c>), shared by <see cref="FileNode"/> and image creation.
/// </summary>
internal static class FileTruncation
{
    /// <summary>The zero-write chunk of full preallocation (QEMU writes 64 KiB at a time).</summary>
    private const int FullChunk = 65536;

    /// <summary>
    /// Resizes the file to exactly <paramref name="length"/> bytes.
    /// <list type="bullet">
    /// <item>off: ftruncate; a file grown from empty gets its first block written, so that O_DIRECT alignment probing
    /// finds an allocated block later (QEMU's <c>allocate_first_block</c>).</item>
    /// <item>falloc: posix_fallocate of the new part (plus the first block, as for off, when the file was empty).</item>
    /// <item>full: ftruncate, then zeroes written over the new part, then fsync.</item>
    /// <item>metadata: not a file-level mode ("Unsupported preallocation mode: metadata").</item>
    /// </list>
    /// Preallocation cannot shrink. When falloc or full fails, the old length is restored.
    /// </summary>
    /// <param name="limits">The descriptor's O_DIRECT limits (zeroes are written with aligned buffers).</param>
    /// <exception cref="IOException">QEMU's message ("Could not resize file: No space left on device"); HResult is the errno when there is one.</exception>
    public static void Truncate(SafeFileHandle handle, long length, PreallocationMode preallocation, BlockLimits limits)
    {
        if (Libc.FStat(handle, out Libc.FileStatus status) is int statError and not 0)
        {
            throw FileIOException.FromErrno(statError, "Could not stat file");
        }

        long current = status.Size;
        if (current > length && preallocation != PreallocationMode.Off)
        {
            throw new FileIOException("Cannot use preallocation for shrinking files", Libc.EOPNOTSUPP);
        }

        switch (preallocation)
        {
            case PreallocationMode.Off:
                if (Libc.FTruncate(handle, length) is int errno and not 0)
                {
                    throw FileIOException.FromErrno(errno, "Could not resize file");
                }

                if (current == 0 && length > 0)
                {
                    AllocateFirstBlock(handle, length);
                }

                return;

            case PreallocationMode.Falloc:
                if (length == current)
                {
                    return;
                }

                int fallocError = Libc.PosixFAllocate(handle, current, length - current);
                if (fallocError != 0)
                {
                    RestoreLength(handle, current);
                    throw FileIOException.FromErrno(fallocError, "Could not preallocate new data");
                }

                if (current == 0)
                {
                    // fallocate()d blocks read back without O_DIRECT errors at any alignment; see AllocateFirstBlock.
                    AllocateFirstBlock(handle, length);
                }

                return;

            case PreallocationMode.Full:
                try
                {
                    WriteZeroes(handle, current, length, limits);
                }
                catch
                {
                    RestoreLength(handle, current);
                    throw;
                }

                return;

            default:
                throw new FileIOException($"Unsupported preallocation mode: {preallocation.ToOptionValue()}", Libc.EOPNOTSUPP);
        }
    }

    private static void WriteZeroes(SafeFileHandle handle, long current, long length, BlockLimits limits)
    {
        // Knowing the final size first lets the file system allocate in fewer, larger pieces.
        if (Libc.FTruncate(handle, length) is int errno and not 0)
        {
            throw FileIOException.FromErrno(errno, "Could not resize file");
        }

        int align = Math.Max(1, limits.RequestAlignment);
        long start = current;
        long end = length;
        if (align > 1)
        {
            // O_DIRECT needs aligned writes. The partial block at the old end is already allocated (it holds data);
            // the last block may be written whole and the size cut back afterwards.
            start = RoundUp(current, align);
            end = RoundUp(length, align);
        }

        using var zeroes = new AlignedBuffer(FullChunk, Math.Max(FileNode.MaxBlockSize, Math.Max(align, limits.MemoryAlignment)));
        zeroes.GetSpan().Clear();
        for (long offset = start; offset < end;)
        {
            int chunk = (int)Math.Min(FullChunk, end - offset);
            long written = Libc.PWrite(handle, zeroes.GetSpan()[..chunk], offset);
            if (written <= 0)
            {
                throw FileIOException.FromErrno(written < 0 ? (int)-written : Libc.ENOSPC, "Could not write zeros for preallocation");
            }

            offset += written;
        }

        if (end != length && Libc.FTruncate(handle, length) is int cutError and not 0)
        {
            throw FileIOException.FromErrno(cutError, "Could not resize file");
        }

        if (Libc.FSync(handle) is int syncError and not 0)
        {
            throw FileIOException.FromErrno(syncError, "Could not flush file to disk");
        }
    }

    /// <summary>
    /// Writes zeroes over the first block of a file that was just grown from empty (QEMU's <c>allocate_first_block</c>):
    /// reads from unallocated or fallocate()d space succeed with any O_DIRECT alignment, which would make later
    /// alignment probing fall back to the slow 4 KiB. Best effort: failures are ignored.
    /// </summary>
    /// <remarks>
    /// QEMU writes 512 bytes even when the new size is smaller, leaving a 512-byte file after a resize to, say, 100
    /// bytes; qimg writes at most the new size so that the file has the size asked for.
    /// </remarks>
    internal static void AllocateFirstBlock(SafeFileHandle handle, long newSize)
    {
        int size = newSize < FileNode.MaxBlockSize ? 512 : FileNode.MaxBlockSize;
        int maxAlign = Math.Max(FileNode.MaxBlockSize, Environment.SystemPageSize);
        using var buffer = new AlignedBuffer(size, maxAlign);
        buffer.GetSpan().Clear();
        _ = Libc.PWrite(handle, buffer.GetSpan()[..(int)Math.Min(size, newSize)], 0);
    }

    private static void RestoreLength(SafeFileHandle handle, long length) => _ = Libc.FTruncate(handle, length);

    private static long RoundUp(long value, long align) => (value + align - 1) / align * align;
}
