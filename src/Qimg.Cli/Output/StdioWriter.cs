using System.Text;

namespace Qimg.Cli.Output;

/// <summary>
/// A buffered writer over a standard stream that, like C stdio in qemu-img (which ignores SIGPIPE and the result of
/// printf), drops output once the stream is gone (a closed pipe) instead of failing the command.
/// </summary>
internal sealed class StdioWriter : TextWriter
{
    private readonly StreamWriter _inner;
    private bool _broken;

    public StdioWriter(Stream stream, int bufferSize, bool autoFlush)
    {
        _inner = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize) { AutoFlush = autoFlush };
    }

    public override Encoding Encoding => _inner.Encoding;

    [System.Diagnostics.CodeAnalysis.AllowNull]
    public override string NewLine
    {
        get => "\n";
        set
        {
        }
    }

    public override void Write(char value) => Write(new ReadOnlySpan<char>(in value));

    public override void Write(string? value) => Write(value.AsSpan());

    public override void Write(char[] buffer, int index, int count) => Write(buffer.AsSpan(index, count));

    public override void Write(ReadOnlySpan<char> buffer)
    {
        if (_broken)
        {
            return;
        }

        try
        {
            _inner.Write(buffer);
        }
        catch (IOException)
        {
            _broken = true;
        }
    }

    public override void Flush() => Guard(_inner.Flush);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Flush();
            try
            {
                _inner.Dispose();
            }
            catch (IOException)
            {
            }
        }

        base.Dispose(disposing);
    }

    private void Guard(Action action)
    {
        if (_broken)
        {
            return;
        }

        try
        {
            action();
        }
        catch (IOException)
        {
            _broken = true;
        }
    }
}
