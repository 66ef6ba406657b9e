namespace Qimg.Diagnostics;

/// <summary>
/// The image is in a format qimg recognises (its probe knows it, or it was named with <c>-f</c>) but cannot open or
/// create yet. Thrown instead of reading the image as raw, which would hand out the container's bytes as guest data.
/// </summary>
public sealed class FormatNotSupportedException : NotSupportedException
{
    public FormatNotSupportedException(string formatName)
        : base($"Image format '{formatName}' is not supported by qimg yet")
    {
        FormatName = formatName;
    }

    /// <summary>QEMU's driver name of the format ("vmdk", "vpc", …).</summary>
    public string FormatName { get; }
}
