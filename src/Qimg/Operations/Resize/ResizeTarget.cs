using Qimg.Options;

namespace Qimg.Operations.Resize;

/// <summary>
/// The size operand of <c>qemu-img resize</c>: "[+|-]size". The number is parsed as a QEMU size option (so its errors
/// are the option parser's), and the sign makes it relative to the current size.
/// </summary>
/// <param name="Sign">+1 or -1 for a relative size, 0 for an absolute one.</param>
/// <param name="Amount">The number after the sign, in bytes.</param>
public readonly record struct ResizeTarget(int Sign, ulong Amount)
{
    /// <summary>Parses the operand as qemu-img does (<c>qemu_opt_set</c> of "size" after the sign is taken off).</summary>
    /// <exception cref="OptionException">Not a size, or not below 2^64 (QEMU's messages for the "size" parameter).</exception>
    public static ResizeTarget Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int sign = text.StartsWith('+') ? 1 : text.StartsWith('-') ? -1 : 0;
        return new ResizeTarget(sign, OptionValues.ParseSize("size", sign == 0 ? text : text[1..]));
    }

    /// <summary>
    /// The new size for an image of <paramref name="currentSize"/> bytes. qemu-img keeps the number in a signed 64-bit
    /// variable, so values past 2^63 wrap, as there.
    /// </summary>
    public long Resolve(long currentSize) => unchecked(Sign == 0 ? (long)Amount : currentSize + (Sign * (long)Amount));
}
