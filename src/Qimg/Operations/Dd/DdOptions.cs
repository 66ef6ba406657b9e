using Qimg.Formats;

namespace Qimg.Operations.Dd;

/// <summary>What <see cref="ImageDd.CopyAsync"/> does: <c>qemu-img dd</c>'s options and operands.</summary>
public sealed record DdOptions
{
    /// <summary>The input image (<c>if=</c>, with <c>-f</c> or <c>--image-opts</c>), opened read-only.</summary>
    public required ImageSource Input { get; init; }

    /// <summary>The name qemu-img quotes for the input (the <c>if=</c> operand).</summary>
    public required string InputName { get; init; }

    /// <summary>The output file (<c>of=</c>), created anew.</summary>
    public required string Output { get; init; }

    /// <summary>The output format (<c>-O</c>); raw by default, as in qemu-img.</summary>
    public string OutputFormat { get; init; } = "raw";

    /// <summary>The block size in bytes (<c>bs=</c>, 1 to 2^31 - 1; 512 by default).</summary>
    public int BlockSize { get; init; } = 512;

    /// <summary>Copy only this many blocks, counted from the start of the input (<c>count=</c>); null copies to the end.</summary>
    public long? Count { get; init; }

    /// <summary>Blocks skipped at the start of the input (<c>skip=</c>); null skips nothing.</summary>
    public long? Skip { get; init; }

    /// <summary>Open options for the input (locking, <c>-U</c>, warnings); it is always opened read-only.</summary>
    public ImageOpenOptions OpenOptions { get; init; } = new();
}
