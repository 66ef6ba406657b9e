using System.Globalization;
using System.Numerics;
using System.Text;

namespace Qimg.Cli.Output;

/// <summary>
/// The few C <c>printf</c> conversions whose output qemu-img users see and .NET formats differently: <c>%.2f</c> and
/// <c>%.Ng</c> (with glibc's exact round-half-even on the binary value), <c>%#x</c>, and QEMU's <c>size_to_str</c>.
/// </summary>
internal static class CFormat
{
    private static readonly string[] s_iecPrefixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

    /// <summary>
    /// C's <c>%0.2f</c> for a finite, non-negative value: the exact binary value rounded to two decimals, ties to even
    /// (glibc), which .NET's "F2" does not do for exact ties such as 0.125.
    /// </summary>
    public static string Fixed2(double value)
    {
        const int Decimals = 2;
        long bits = BitConverter.DoubleToInt64Bits(value);
        int exponent = (int)((bits >> 52) & 0x7FF);
        long mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0)
        {
            exponent = 1;
        }
        else
        {
            mantissa |= 1L << 52;
        }

        // value = mantissa * 2^exponent; scaled = value * 10^Decimals, rounded half to even.
        exponent -= 1075;
        BigInteger scaled = mantissa * BigInteger.Pow(10, Decimals);
        if (exponent >= 0)
        {
            scaled <<= exponent;
        }
        else
        {
            BigInteger divisor = BigInteger.One << -exponent;
            BigInteger quotient = BigInteger.DivRem(scaled, divisor, out BigInteger remainder);
            int half = (remainder * 2).CompareTo(divisor);
            if (half > 0 || (half == 0 && !quotient.IsEven))
            {
                quotient += 1;
            }

            scaled = quotient;
        }

        string digits = scaled.ToString(CultureInfo.InvariantCulture).PadLeft(Decimals + 1, '0');
        return digits[..^Decimals] + "." + digits[^Decimals..];
    }

    /// <summary>C's <c>%.{precision}g</c> in the C locale.</summary>
    public static string G(double value, int precision)
    {
        if (precision == 0)
        {
            precision = 1;
        }

        if (double.IsNaN(value))
        {
            return double.IsNegative(value) ? "-nan" : "nan";
        }

        if (double.IsInfinity(value))
        {
            return value < 0 ? "-inf" : "inf";
        }

        string sign = double.IsNegative(value) ? "-" : string.Empty;
        value = Math.Abs(value);
        if (value == 0)
        {
            return sign + "0";
        }

        // Round the exact decimal expansion to `precision` significant digits.
        (string digits, int exponent) = RoundSignificant(value, precision);
        if (exponent < precision && exponent >= -4)
        {
            // Style f with precision - 1 - exponent decimals, trailing zeros removed.
            string text;
            if (exponent >= 0)
            {
                string whole = digits[..(exponent + 1)];
                string fraction = digits[(exponent + 1)..].TrimEnd('0');
                text = fraction.Length == 0 ? whole : whole + "." + fraction;
            }
            else
            {
                string fraction = (new string('0', -exponent - 1) + digits).TrimEnd('0');
                text = "0." + fraction;
            }

            return sign + text;
        }

        string mantissa = digits[..1];
        string rest = digits[1..].TrimEnd('0');
        if (rest.Length != 0)
        {
            mantissa += "." + rest;
        }

        string exponentText = Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
        return $"{sign}{mantissa}e{(exponent < 0 ? '-' : '+')}{exponentText}";
    }

    /// <summary>C's <c>%#x</c>: "0x" and lowercase hex, except that zero prints as "0".</summary>
    public static string HexAlternate(long value) =>
        value == 0 ? "0" : "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>QEMU's <c>size_to_str</c>: "196 KiB", "1 MiB", "512 B", "1.5 GiB" (three significant digits).</summary>
    public static string SizeToString(ulong value)
    {
        double scaled = value / (1000.0 / 1024.0);
        int exponent = scaled == 0 ? 0 : Math.ILogB(scaled) + 1; // frexp's exponent
        int i = (exponent - 1) / 10 * 10;
        ulong divisor = 1UL << i;
        return $"{G((double)value / divisor, 3)} {s_iecPrefixes[i / 10]}B";
    }

    /// <summary>
    /// The first <paramref name="precision"/> significant decimal digits of a positive finite double, rounded half to
    /// even on its exact binary value (as glibc does), and the decimal exponent of the first digit.
    /// </summary>
    private static (string Digits, int Exponent) RoundSignificant(double value, int precision)
    {
        long bits = BitConverter.DoubleToInt64Bits(value);
        int biased = (int)((bits >> 52) & 0x7FF);
        long fraction = bits & 0xFFFFFFFFFFFFFL;
        BigInteger mantissa = biased == 0 ? fraction : fraction | (1L << 52);
        int binaryExponent = (biased == 0 ? 1 : biased) - 1075;

        // value = numerator / 10^scale exactly.
        BigInteger numerator;
        int scale;
        if (binaryExponent >= 0)
        {
            numerator = mantissa << binaryExponent;
            scale = 0;
        }
        else
        {
            numerator = mantissa * BigInteger.Pow(5, -binaryExponent);
            scale = -binaryExponent;
        }

        string exact = numerator.ToString(CultureInfo.InvariantCulture);
        int exponent = exact.Length - 1 - scale;
        if (exact.Length <= precision)
        {
            return (exact.PadRight(precision, '0'), exponent);
        }

        var kept = BigInteger.Parse(exact.AsSpan(0, precision), CultureInfo.InvariantCulture);
        char next = exact[precision];
        bool restNonZero = exact.AsSpan(precision + 1).IndexOfAnyExcept('0') >= 0;
        bool roundUp = next > '5' || (next == '5' && (restNonZero || !kept.IsEven));
        if (roundUp)
        {
            kept += 1;
        }

        string digits = kept.ToString(CultureInfo.InvariantCulture);
        if (digits.Length > precision)
        {
            // 9.99 -> 10.0: one more digit, one higher exponent.
            digits = digits[..precision];
            exponent++;
        }

        return (digits, exponent);
    }

    /// <summary>Left-justifies <paramref name="text"/> in <paramref name="width"/> bytes (C's <c>%-Ns</c> counts UTF-8 bytes).</summary>
    public static string PadRight(string text, int width)
    {
        int bytes = Encoding.UTF8.GetByteCount(text);
        return bytes >= width ? text : text + new string(' ', width - bytes);
    }

    /// <summary>Right-justifies <paramref name="text"/> in <paramref name="width"/> bytes (C's <c>%Ns</c>).</summary>
    public static string PadLeft(string text, int width)
    {
        int bytes = Encoding.UTF8.GetByteCount(text);
        return bytes >= width ? text : new string(' ', width - bytes) + text;
    }
}
