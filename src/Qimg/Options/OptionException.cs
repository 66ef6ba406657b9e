namespace Qimg.Options;

/// <summary>An option value or option string that qemu-img would reject; the message is qemu-img's wording.</summary>
public sealed class OptionException : Exception
{
    public OptionException(string message)
        : base(message)
    {
    }
}
