using System.Globalization;

namespace Qimg.Options;

/// <summary>
/// Sizes as QEMU parses them (<c>qemu_strtosz</c>): a decimal (or 0x hex) number with an optional fraction and an
/// optional suffix B, K, M, G, T, P or E (case-insensitive, powers of 1024); a fraction needs a suffix above B.
/// </summary>
public static class QemuSize
{
    /// <summary>Result of <see cref="TryParse(string, char, out ulong)"/>.</summary>
    public enum ParseResult
    {
        Ok,
        Invalid,
        OutOfRange,
    }

    /// <summary>Parses a whole string; <paramref name="defaultSuffix"/> applies when no suffix is given ('B' = bytes).</summary>
    public static ParseResult TryParse(string text, char defaultSuffix, out ulong value)
    {
        ParseResult result = TryParsePrefix(text, defaultSuffix, out value, out int consumed);
        if (result == ParseResult.Ok && consumed != text.Length)
        {
            value = 0;
            return ParseResult.Invalid;
        }

        return result;
    }

    /// <summary>Parses a whole string with bytes as the default unit.</summary>
    public static ParseResult TryParse(string text, out ulong value) => TryParse(text, 'B', out value);

    /// <summary>Parses the longest valid size at the start of <paramref name="text"/> and says how many characters it used.</summary>
    public static ParseResult TryParsePrefix(string text, char defaultSuffix, out ulong value, out int consumed)
    {
        value = 0;
        consumed = 0;
        int i = 0;
        while (i < text.Length && IsSpace(text[i]))
        {
            i++;
        }

        // strtoull accepts a sign; QEMU then rejects any '-' it consumed.
        if (i < text.Length && (text[i] == '+' || text[i] == '-'))
        {
            if (text[i] == '-')
            {
                return ParseResult.Invalid;
            }

            i++;
        }

        int digitsStart = i;
        bool hex = false;
        ulong integral = 0;
        bool overflow = false;
        if (i + 1 < text.Length && text[i] == '0' && (text[i + 1] == 'x' || text[i + 1] == 'X') && i + 2 < text.Length && Uri.IsHexDigit(text[i + 2]))
        {
            hex = true;
            i += 2;
            while (i < text.Length && Uri.IsHexDigit(text[i]))
            {
                overflow |= integral > (ulong.MaxValue >> 4);
                integral = (integral << 4) | (uint)Convert.ToInt32(text[i].ToString(), 16);
                i++;
            }
        }
        else
        {
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                ulong digit = (ulong)(text[i] - '0');
                if (integral > (ulong.MaxValue - digit) / 10)
                {
                    overflow = true;
                }

                integral = unchecked(integral * 10 + digit);
                i++;
            }
        }

        if (i == digitsStart)
        {
            return ParseResult.Invalid;
        }

        if (overflow)
        {
            return ParseResult.OutOfRange;
        }

        decimal fraction = 0;
        if (text.Length > i && text[i] == '.')
        {
            if (hex)
            {
                return ParseResult.Invalid;
            }

            int f = i + 1;
            while (f < text.Length && char.IsAsciiDigit(text[f]))
            {
                f++;
            }

            if (f < text.Length && (text[f] == 'e' || text[f] == 'E'))
            {
                return ParseResult.Invalid;
            }

            string digits = text[(i + 1)..f];
            fraction = digits.Length == 0 ? 0 : decimal.Parse("0." + (digits.Length > 20 ? digits[..20] : digits), CultureInfo.InvariantCulture);
            i = f;
        }

        ulong multiplier;
        if (i < text.Length && SuffixMultiplier(text[i]) is ulong m)
        {
            multiplier = m;
            i++;
        }
        else
        {
            multiplier = SuffixMultiplier(defaultSuffix) ?? 1;
        }

        if (multiplier == 1)
        {
            if (fraction != 0)
            {
                return ParseResult.Invalid;
            }

            value = integral;
        }
        else
        {
            UInt128 whole = (UInt128)integral * multiplier;
            // Fractional part, rounded half up as QEMU's 64.64 fixed point does.
            decimal fractional = fraction * multiplier;
            UInt128 total = whole + (UInt128)decimal.Round(fractional, MidpointRounding.AwayFromZero);
            if (total > ulong.MaxValue)
            {
                return ParseResult.OutOfRange;
            }

            value = (ulong)total;
        }

        consumed = i;
        return ParseResult.Ok;
    }

    private static ulong? SuffixMultiplier(char suffix) => char.ToUpperInvariant(suffix) switch
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
