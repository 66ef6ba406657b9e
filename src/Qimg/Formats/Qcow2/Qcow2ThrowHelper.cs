using System.Diagnostics.CodeAnalysis;

namespace Qimg.Formats.Qcow2;

/// <summary>Throw helpers, kept off the hot paths.</summary>
internal static class Qcow2ThrowHelper
{
    private const string CorruptionKey = "Qimg.Qcow2.Corruption";

    /// <summary>
    /// Inconsistent metadata found while using an image (QEMU's qcow2_signal_corruption). The image catches it at the
    /// operation boundary (<see cref="IsCorruption"/>), reports it, marks a writable image corrupt when fatal, and stops
    /// using it.
    /// </summary>
    [DoesNotReturn]
    public static void Corruption(string message) => throw CorruptionException(message, fatal: true);

    public static InvalidDataException CorruptionException(string message, bool fatal)
    {
        var exception = new InvalidDataException(message);
        exception.Data[CorruptionKey] = fatal;
        return exception;
    }

    /// <summary>Whether <paramref name="exception"/> reports corrupt metadata found while using the image.</summary>
    public static bool IsCorruption(Exception exception) => exception.Data.Contains(CorruptionKey);

    /// <summary>Whether a corruption makes the image unusable.</summary>
    public static bool IsFatal(Exception exception) => exception.Data[CorruptionKey] is true;

    /// <summary>An I/O error with the C library's wording for an errno, as QEMU prints it (strerror).</summary>
    public static IOException Errno(int errno) => new(errno switch
    {
        5 => "Input/output error",
        12 => "Cannot allocate memory",
        22 => "Invalid argument",
        27 => "File too large",
        28 => "No space left on device",
        95 => "Operation not supported",
        _ => $"Error {errno}",
    })
    {
        HResult = errno,
    };

    /// <summary>C's "%#x": "0x" and lowercase hex digits, but a bare "0" for zero.</summary>
    public static string Hex(long value) => value == 0 ? "0" : "0x" + value.ToString("x", System.Globalization.CultureInfo.InvariantCulture);

    /// <inheritdoc cref="Hex(long)"/>
    public static string Hex(ulong value) => value == 0 ? "0" : "0x" + value.ToString("x", System.Globalization.CultureInfo.InvariantCulture);

    public const int EIO = 5;
    public const int ENOMEM = 12;
    public const int EINVAL = 22;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int ENOTSUP = 95;
}
