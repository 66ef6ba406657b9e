using System.Globalization;

namespace Qimg.Options;

/// <summary>
/// Sizes as QEMU parses them (<c>qemu_strtosz</c>): a decimal (or 0x hex) number with an optional fraction and an
/// optional suffix B, K, M, G, T, P or E (case-insensitive, powers of 1024); a fraction needs a suffix above B.
/// </summary>
/// <remarks>
/// Reproduces QEMU's corner cases: leading white space and '+' are accepted, any '-' is refused, "1.k" means 1 KiB,
/// exponents ("1.5e3k") are refused, the fraction is taken as a double and scaled in 64.64 fixed point with the
/// half rounded up, and a suffix after a hex number is accepted with a deprecation warning.
/// </remarks>
public static class QemuSize
{
    /// <summary>Result of <see cref="TryParse(string, char, out ulong)"/>.</summary>
    public enum ParseResult
    {
        Ok,
        /// <summary>Not a size (QEMU's -EINVAL).</summary>
        Invalid,
        /// <summary>A size, but not below 2^64 (QEMU's -ERANGE).</summary>
        OutOfRange,
    }

    /// <summary>Parses a whole string; <paramref name="defaultSuffix"/> applies when no suffix is given ('B' = bytes).</summary>
    /// <param name="warning">Receives QEMU's deprecation warning for a suffix after a hex number; null drops it.</param>
    public static ParseResult TryParse(string text, char defaultSuffix, out ulong value, Action<string>? warning = null)
    {
        ParseResult result = Parse(text, defaultSuffix, out value, out int end, warning);
        if (end < text.Length)
        {
            // Trailing garbage makes anything (even an overflow) invalid, as with a NULL end pointer in QEMU.
            value = 0;
            return ParseResult.Invalid;
        }

        return result;
    }

    /// <summary>Parses a whole string with bytes as the default unit.</summary>
    public static ParseResult TryParse(string text, out ulong value) => TryParse(text, 'B', out value);

    /// <summary>
    /// Parses a size at the start of <paramref name="text"/> (QEMU's <c>qemu_strtosz</c> with an end pointer):
    /// <paramref name="consumed"/> is where parsing stopped (0 for invalid input, after the digits on overflow).
    /// </summary>
    public static ParseResult TryParsePrefix(string text, char defaultSuffix, out ulong value, out int consumed) =>
        Parse(text, defaultSuffix, out value, out consumed, null);

    private static ParseResult Parse(string text, char defaultSuffix, out ulong value, out int end, Action<string>? warning)
    {
        value = 0;
        ParseResult result = StrToU64(text, 0, 10, out ulong integral, out end);
        if (result != ParseResult.Ok)
        {
            return result;
        }

        if (text.AsSpan(0, end).Contains('-'))
        {
            end = 0;
            return ParseResult.Invalid;
        }

        bool hex = false;
        ulong fraction = 0;
        if (integral == 0 && end < text.Length && (text[end] == 'x' || text[end] == 'X'))
        {
            // Looks like hex: reparse, and insist on no fraction.
            result = StrToU64(text, 0, 16, out integral, out end);
            if (result != ParseResult.Ok)
            {
                return result;
            }

            if (end < text.Length && text[end] == '.')
            {
                end = 0;
                return ParseResult.Invalid;
            }

            hex = true;
        }
        else if (end < text.Length && text[end] == '.')
        {
            int start = end;
            int stop = ScanDecimalFloat(text, start);
            if (stop == start || !double.TryParse(text.AsSpan(start, stop - start), NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out double parsed)
                || double.IsInfinity(parsed) || (parsed != 0 && parsed < double.Epsilon * 4503599627370496.0))
            {
                // strtod found nothing (or under/overflowed): QEMU skips just the '.'.
                end = start + 1;
            }
            else if (text.AsSpan(start, stop - start).ContainsAny('e', 'E'))
            {
                end = 0;
                return ParseResult.Invalid;
            }
            else
            {
                end = stop;
                fraction = ToFixedPoint64(parsed);
            }
        }

        ulong multiplier;
        if (end < text.Length && Multiplier(text[end]) is ulong suffix)
        {
            multiplier = suffix;
            if (hex)
            {
                warning?.Invoke($"Using a multiplier suffix on hex numbers is deprecated: {text}");
            }

            end++;
        }
        else
        {
            multiplier = Multiplier(defaultSuffix) ?? throw new ArgumentException("Invalid default suffix", nameof(defaultSuffix));
        }

        if (multiplier == 1)
        {
            if (fraction != 0)
            {
                end = 0;
                return ParseResult.Invalid;
            }

            value = integral;
            return ParseResult.Ok;
        }

        // Exact result: 64.64 x 64.0 -> 128.64 fixed point, then round the half upward.
        UInt128 whole = (UInt128)integral * multiplier;
        UInt128 fractional = (UInt128)fraction * multiplier;
        UInt128 total = whole + (fractional >> 64) + (((ulong)fractional >> 63) & 1);
        if (total > ulong.MaxValue)
        {
            return ParseResult.OutOfRange;
        }

        value = (ulong)total;
        return ParseResult.Ok;
    }

    /// <summary>A double in [0, 1) as a 0.64 fixed-point fraction, truncated as C's (uint64_t)(f * 0x1p64) does on x86-64.</summary>
    private static ulong ToFixedPoint64(double fraction)
    {
        double scaled = fraction * 18446744073709551616.0;
        if (scaled >= 18446744073709551616.0)
        {
            // Out of range for the conversion; x86-64 code generated by GCC yields 0 here.
            return 0;
        }

        return (ulong)scaled;
    }

    /// <summary>The end of what strtod would parse from a string starting with '.': digits, then an optional exponent.</summary>
    private static int ScanDecimalFloat(string text, int start)
    {
        int i = start + 1;
        int digits = 0;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            i++;
            digits++;
        }

        if (digits == 0)
        {
            return start;
        }

        if (i < text.Length && (text[i] == 'e' || text[i] == 'E'))
        {
            int j = i + 1;
            if (j < text.Length && (text[j] == '+' || text[j] == '-'))
            {
                j++;
            }

            if (j < text.Length && char.IsAsciiDigit(text[j]))
            {
                while (j < text.Length && char.IsAsciiDigit(text[j]))
                {
                    j++;
                }

                i = j;
            }
        }

        return i;
    }

    /// <summary>
    /// C's <c>strtoull</c> as QEMU's <c>qemu_strtou64</c> wraps it: white space, a sign, an optional 0x for base 16
    /// (base 0 picks 16 for 0x, 8 for a leading 0, else 10), digits; Invalid when nothing was converted, OutOfRange (with <paramref name="end"/> past the digits) on overflow.
    /// </summary>
    internal static ParseResult StrToU64(string text, int start, int numberBase, out ulong value, out int end)
    {
        value = 0;
        end = start;
        int i = start;
        while (i < text.Length && IsSpace(text[i]))
        {
            i++;
        }

        bool negative = false;
        if (i < text.Length && (text[i] == '+' || text[i] == '-'))
        {
            negative = text[i] == '-';
            i++;
        }

        bool hexPrefix = i + 2 < text.Length && text[i] == '0' && (text[i + 1] == 'x' || text[i + 1] == 'X') && Uri.IsHexDigit(text[i + 2]);
        if (numberBase == 0)
        {
            numberBase = hexPrefix ? 16 : i < text.Length && text[i] == '0' ? 8 : 10;
        }

        if (numberBase == 16 && hexPrefix)
        {
            i += 2;
        }

        int digitsStart = i;
        bool overflow = false;
        ulong result = 0;
        while (i < text.Length && DigitValue(text[i]) is int digit && digit < numberBase)
        {
            if (!overflow)
            {
                UInt128 next = (UInt128)result * (uint)numberBase + (uint)digit;
                if (next > ulong.MaxValue)
                {
                    overflow = true;
                }
                else
                {
                    result = (ulong)next;
                }
            }

            i++;
        }

        if (i == digitsStart)
        {
            // No conversion. ("0x" without a hex digit after it parses as the "0", as in glibc.)
            return ParseResult.Invalid;
        }

        end = i;
        if (overflow)
        {
            value = ulong.MaxValue;
            return ParseResult.OutOfRange;
        }

        value = negative ? unchecked(0 - result) : result;
        return ParseResult.Ok;
    }

    private static int? DigitValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'z' => c - 'a' + 10,
        >= 'A' and <= 'Z' => c - 'A' + 10,
        _ => null,
    };

    private static ulong? Multiplier(char suffix) => char.ToUpperInvariant(suffix) switch
    {
        'B' => 1UL,
        'K' => 1UL << 10,
        'M' => 1UL << 20,
        'G' => 1UL << 30,
        'T' => 1UL << 40,
        'P' => 1UL << 50,
        'E' => 1UL << 60,
        _ => null,
    };

    private static bool IsSpace(char c) => c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';
}
