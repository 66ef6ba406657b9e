using System.Globalization;
using System.Runtime.InteropServices;

namespace Qimg.Cli.Output;

/// <summary>
/// qemu-img's progress line (util/qemu-progress.c): with <c>-p</c>, "    (12.34/100%)" rewritten in place on stdout;
/// without it, nothing unless SIGUSR1 arrives, after which the next update is printed once on stderr. Updates are
/// absolute percentages; a new value is printed only when it moved by more than the minimum step (or is 0 or 100).
/// Thread-safe: the copy workers report from several threads.
/// </summary>
internal sealed class ProgressPrinter : IProgress<double>, IDisposable
{
    private const int SigUsr1 = 10;

    private readonly object _lock = new();
    private readonly bool _enabled;
    private readonly float _minStep;
    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;
    private readonly PosixSignalRegistration? _signal;
    private float _current;
    private float _lastPrinted;
    private volatile bool _printPending;

    /// <param name="enabled">True for <c>-p</c>.</param>
    /// <param name="minStep">Percentage points between two printed updates (qemu-img: 1 for convert, 2 for compare).</param>
    public ProgressPrinter(bool enabled, float minStep, TextWriter stdout, TextWriter stderr, bool listenForSignal = true)
    {
        _enabled = enabled;
        _minStep = minStep;
        _stdout = stdout;
        _stderr = stderr;
        if (!enabled && listenForSignal && !OperatingSystem.IsWindows())
        {
            try
            {
                // SIGUSR1 (10 on Linux) asks for one progress report, as with qemu-img.
                _signal = PosixSignalRegistration.Create((PosixSignal)SigUsr1, context =>
                {
                    context.Cancel = true;
                    _printPending = true;
                });
            }
            catch (Exception e) when (e is PlatformNotSupportedException or IOException or ArgumentOutOfRangeException)
            {
                _signal = null;
            }
        }
    }

    /// <summary>Sets the absolute progress (0 to 100).</summary>
    public void Report(double percent)
    {
        lock (_lock)
        {
            float current = (float)Math.Min(percent, 100);
            _current = current;
            if (current > _lastPrinted + _minStep || current < _lastPrinted - _minStep || current == 100 || current == 0)
            {
                _lastPrinted = current;
                Print();
            }
        }
    }

    /// <summary>Ends the progress line (a newline after "-p" output).</summary>
    public void End()
    {
        lock (_lock)
        {
            if (_enabled)
            {
                _stdout.Write('\n');
                _stdout.Flush();
            }
        }
    }

    private void Print()
    {
        string text = string.Create(CultureInfo.InvariantCulture, $"    ({CFormat.Fixed2(_current)}/100%)");
        if (_enabled)
        {
            _stdout.Write(text + "\r");
            _stdout.Flush();
        }
        else if (_printPending)
        {
            _printPending = false;
            _stderr.Write(text + "\n");
            _stderr.Flush();
        }
    }

    public void Dispose() => _signal?.Dispose();
}
