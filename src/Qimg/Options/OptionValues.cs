namespace Qimg.Options;

/// <summary>
/// An ordered set of <c>key=value</c> options (QEMU's <c>QemuOpts</c>): what <c>-o</c> gave, validated against the
/// descriptors of the format and protocol, with typed getters that fall back to defaults.
/// </summary>
public sealed class OptionValues
{
    private readonly List<KeyValuePair<string, string>> _values = [];

    /// <summary>The keys set, in the order they were first set.</summary>
    public IEnumerable<string> Keys => _values.Select(static pair => pair.Key);

    public int Count => _values.Count;

    public bool Contains(string key) => IndexOf(key) >= 0;

    /// <summary>Sets <paramref name="key"/>; a later value replaces an earlier one but keeps its position.</summary>
    public void Set(string key, string value)
    {
        int index = IndexOf(key);
        if (index >= 0)
        {
            _values[index] = new(key, value);
        }
        else
        {
            _values.Add(new(key, value));
        }
    }

    public bool Remove(string key)
    {
        int index = IndexOf(key);
        if (index < 0)
        {
            return false;
        }

        _values.RemoveAt(index);
        return true;
    }

    public bool TryGet(string key, out string value)
    {
        int index = IndexOf(key);
        value = index >= 0 ? _values[index].Value : string.Empty;
        return index >= 0;
    }

    public string? GetString(string key) => TryGet(key, out string value) ? value : null;

    /// <summary>An on/off option (QEMU accepts on/yes/true/y and off/no/false/n).</summary>
    /// <exception cref="OptionException">The value is not a boolean.</exception>
    public bool GetBool(string key, bool defaultValue)
    {
        if (!TryGet(key, out string value))
        {
            return defaultValue;
        }

        return ParseBool(key, value);
    }

    /// <summary>A size option with QEMU's suffixes.</summary>
    /// <exception cref="OptionException">The value is not a size.</exception>
    public ulong GetSize(string key, ulong defaultValue)
    {
        if (!TryGet(key, out string value))
        {
            return defaultValue;
        }

        return ParseSize(key, value);
    }

    /// <summary>A plain number option (decimal, 0x hex or 0 octal, as strtoull with base 0).</summary>
    /// <exception cref="OptionException">The value is not a number.</exception>
    public ulong GetNumber(string key, ulong defaultValue)
    {
        if (!TryGet(key, out string value))
        {
            return defaultValue;
        }

        return ParseNumber(key, value);
    }

    /// <summary>Checks a value against its declared type, with QEMU's error wording.</summary>
    /// <exception cref="OptionException">The value does not parse.</exception>
    public static void Validate(OptionDescriptor descriptor, string value)
    {
        switch (descriptor.Type)
        {
            case OptionType.Bool:
                ParseBool(descriptor.Name, value);
                break;
            case OptionType.Size:
                ParseSize(descriptor.Name, value);
                break;
            case OptionType.Number:
                ParseNumber(descriptor.Name, value);
                break;
        }
    }

    public static bool ParseBool(string key, string value) => value switch
    {
        "on" or "yes" or "true" or "y" => true,
        "off" or "no" or "false" or "n" => false,
        _ => throw new OptionException($"Parameter '{key}' expects 'on' or 'off'"),
    };

    public static ulong ParseSize(string key, string value)
    {
        switch (QemuSize.TryParse(value, out ulong size))
        {
            case QemuSize.ParseResult.Ok:
                return size;
            case QemuSize.ParseResult.OutOfRange:
                throw new OptionException($"Value '{value}' is out of range for parameter '{key}'");
            default:
                throw new OptionException(
                    $"Parameter '{key}' expects a non-negative number below 2^64\n" +
                    "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" +
                    "and exabytes, respectively.");
        }
    }

    /// <summary>A number as QEMU's <c>parse_option_number</c> reads it (strtoull with base 0: decimal, 0x hex, 0 octal; a sign is accepted).</summary>
    /// <exception cref="OptionException">Not a number, or not below 2^64.</exception>
    public static ulong ParseNumber(string key, string value)
    {
        QemuSize.ParseResult result = QemuSize.StrToU64(value, 0, 0, out ulong number, out int end);
        if (result == QemuSize.ParseResult.OutOfRange && end == value.Length)
        {
            throw new OptionException($"Value '{value}' is too large for parameter '{key}'");
        }

        if (result != QemuSize.ParseResult.Ok || end != value.Length)
        {
            throw new OptionException($"Parameter '{key}' expects a number");
        }

        return number;
    }

    private int IndexOf(string key)
    {
        for (int i = 0; i < _values.Count; i++)
        {
            if (_values[i].Key == key)
            {
                return i;
            }
        }

        return -1;
    }
}
