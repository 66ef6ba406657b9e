using System.Buffers;
using System.Runtime.InteropServices;

namespace Qimg.Buffers;

/// <summary>
/// A native buffer whose address is aligned (for O_DIRECT), exposed as <see cref="Memory{T}"/>.
/// Disposing frees the memory; the <see cref="Memory"/> must not be used afterwards.
/// </summary>
public sealed unsafe class AlignedBuffer : MemoryManager<byte>
{
    private byte* _pointer;
    private readonly int _length;

    public AlignedBuffer(int length, int alignment)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (alignment < 1 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), "Alignment must be a power of two.");
        }

        _length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), (nuint)Math.Max(alignment, sizeof(void*)));
    }

    public int Length => _length;

    /// <summary>Frees the native memory.</summary>
    public void Dispose() => ((IDisposable)this).Dispose();

    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        return new Span<byte>(_pointer, _length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }

    /// <summary>True when <paramref name="memory"/> starts at an address that is a multiple of <paramref name="alignment"/>.</summary>
    public static bool IsAligned(ReadOnlyMemory<byte> memory, int alignment)
    {
        if (alignment <= 1)
        {
            return true;
        }

        using MemoryHandle handle = memory.Pin();
        return ((nuint)handle.Pointer & (nuint)(alignment - 1)) == 0;
    }
}
