using System.Runtime.InteropServices;

namespace Qimg.Cli.Output;

/// <summary>
/// A write-only stream over an inherited file descriptor (stdout, stderr) that calls write(2) as C stdio does.
/// Not System.Console's streams: their first write initializes the terminal when stdin is one (keypad_xmit,
/// "ESC[?1h ESC="), which qemu-img never does. Not a FileStream either: on a regular file it writes with pwrite at a
/// position of its own, so stdout and stderr sent to one file ("&gt; log 2&gt;&amp;1") would overwrite each other;
/// write(2) uses the offset the two descriptors share.
/// </summary>
internal sealed partial class DescriptorStream : Stream
{
    private const int EINTR = 4;

    private readonly int _fd;

    public DescriptorStream(int fd)
    {
        _fd = fd;
    }

    /// <summary>A stream for <paramref name="fd"/>: this one on Unix, the console's elsewhere.</summary>
    public static Stream Open(int fd)
    {
        if (OperatingSystem.IsWindows())
        {
            return fd == 1 ? Console.OpenStandardOutput() : Console.OpenStandardError();
        }

        return new DescriptorStream(fd);
    }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <exception cref="IOException">write(2) failed (EPIPE once the reader is gone: .NET ignores SIGPIPE).</exception>
    public override unsafe void Write(ReadOnlySpan<byte> buffer)
    {
        fixed (byte* start = buffer)
        {
            byte* pointer = start;
            nuint left = (nuint)buffer.Length;
            while (left > 0)
            {
                nint written = WriteCore(_fd, pointer, left);
                if (written < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == EINTR)
                    {
                        continue;
                    }

                    throw new IOException(Marshal.GetPInvokeErrorMessage(errno), errno);
                }

                pointer += written;
                left -= (nuint)written;
            }
        }
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteCore(int fd, byte* buffer, nuint count);
}
