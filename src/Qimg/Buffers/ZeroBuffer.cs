namespace Qimg.Buffers;

/// <summary>A shared, never-written block of zeroes for fallback zero writes and comparisons.</summary>
public static class ZeroBuffer
{
    /// <summary>Size of <see cref="Memory"/>: 1 MiB.</summary>
    public const int Size = 1 << 20;

    private static readonly byte[] s_zeroes = new byte[Size];

    /// <summary>One MiB of zeroes. Callers must never write into it.</summary>
    public static ReadOnlyMemory<byte> Memory => s_zeroes;
}
