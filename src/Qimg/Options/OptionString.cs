namespace Qimg.Options;

/// <summary>One <c>name=value</c> element of an option string.</summary>
public readonly record struct OptionPair(string Name, string Value);

/// <summary>
/// QEMU's <c>QemuOpts</c> option strings (<c>-o</c>, <c>--image-opts</c>, <c>-T</c>): comma-separated
/// <c>name=value</c> elements, a doubled comma standing for a literal comma in values, bare <c>name</c> meaning
/// <c>name=on</c> and <c>noname</c> meaning <c>name=off</c>, and "help" or "?" asking for the option list.
/// </summary>
public static class OptionString
{
    /// <summary>QEMU's <c>is_help_option</c>.</summary>
    public static bool IsHelpOption(string text) => text is "help" or "?";

    /// <summary>
    /// qemu-img's <c>is_valid_option_list</c>: whether several <c>-o</c> arguments can be joined with ','. An empty
    /// list, one starting with ',' or one ending in an odd number of ',' is not.
    /// </summary>
    public static bool IsValidOptionList(string text)
    {
        if (text.Length == 0 || text[0] == ',')
        {
            return false;
        }

        int trailing = text.Length - text.TrimEnd(',').Length;
        return trailing % 2 == 0;
    }

    /// <summary>Joins repeated <c>-o</c> arguments as qemu-img does ("a,b").</summary>
    /// <exception cref="OptionException">"Invalid option list: …" for a list that cannot be joined.</exception>
    public static string Accumulate(string? options, string next)
    {
        if (!IsValidOptionList(next))
        {
            throw new OptionException($"Invalid option list: {next}");
        }

        return options is null ? next : options + "," + next;
    }

    /// <summary>Whether any element of <paramref name="text"/> is a bare "help" or "?" (QEMU's <c>has_help_option</c>).</summary>
    public static bool HasHelpOption(string text)
    {
        Split(text, null, out bool helpWanted, stopAtHelp: true);
        return helpWanted;
    }

    /// <summary>
    /// Splits <paramref name="text"/> into its elements (QEMU's <c>get_opt_name_value</c>). The first element may omit
    /// "name=" when <paramref name="impliedName"/> is given. <paramref name="flagWarning"/> receives QEMU's deprecation
    /// warning for bare flags (only the noisy parsers of <c>--image-opts</c> and <c>-T</c> warn).
    /// </summary>
    public static IReadOnlyList<OptionPair> Split(string text, string? impliedName, out bool helpWanted, bool stopAtHelp = false, Action<string>? flagWarning = null)
    {
        var pairs = new List<OptionPair>();
        helpWanted = false;
        int p = 0;
        string? firstName = impliedName;
        while (p < text.Length)
        {
            string name;
            string value;
            int length = IndexOfAny(text, p, '=', ',') - p;
            if (p + length >= text.Length || text[p + length] != '=')
            {
                if (firstName is not null)
                {
                    name = firstName;
                    p = ReadValue(text, p, out value);
                }
                else
                {
                    name = text.Substring(p, length);
                    p += length;
                    string prefix = string.Empty;
                    bool isHelp = false;
                    if (name.StartsWith("no", StringComparison.Ordinal))
                    {
                        name = name[2..];
                        value = "off";
                        prefix = "no";
                    }
                    else
                    {
                        value = "on";
                        isHelp = IsHelpOption(name);
                    }

                    if (!isHelp && flagWarning is not null)
                    {
                        flagWarning($"short-form boolean option '{prefix}{name}' deprecated\n" +
                            (name == "delay" ? $"Please use nodelay={(prefix.Length != 0 ? "on" : "off")} instead" : $"Please use {name}={value} instead"));
                    }

                    if (isHelp)
                    {
                        helpWanted = true;
                    }
                }
            }
            else
            {
                name = text.Substring(p, length);
                p = ReadValue(text, p + length + 1, out value);
            }

            if (p < text.Length && text[p] == ',')
            {
                p++;
            }

            firstName = null;
            if (helpWanted && stopAtHelp)
            {
                return pairs;
            }

            pairs.Add(new OptionPair(name, value));
        }

        return pairs;
    }

    /// <summary>
    /// Parses <paramref name="text"/> into <paramref name="values"/>, checking every name against
    /// <paramref name="descriptors"/> and every value against its type (QEMU's <c>qemu_opts_do_parse</c>). "id"
    /// elements are skipped. A later value of the same name replaces an earlier one.
    /// </summary>
    /// <exception cref="OptionException">An unknown name ("Invalid parameter 'x'") or a value of the wrong type.</exception>
    public static void ParseInto(OptionValues values, string text, IReadOnlyList<OptionDescriptor> descriptors)
    {
        foreach (OptionPair pair in Split(text, null, out _))
        {
            if (pair.Name == "id")
            {
                continue;
            }

            Set(values, pair.Name, pair.Value, descriptors);
        }
    }

    /// <summary>Sets one option after checking it against <paramref name="descriptors"/> (QEMU's <c>qemu_opt_set</c>).</summary>
    /// <exception cref="OptionException">An unknown name or a value of the wrong type.</exception>
    public static void Set(OptionValues values, string name, string value, IReadOnlyList<OptionDescriptor> descriptors)
    {
        OptionDescriptor descriptor = OptionList.Find(descriptors, name)
            ?? throw new OptionException($"Invalid parameter '{name}'");
        OptionValues.Validate(descriptor, value);
        values.Set(name, value);
    }

    /// <summary>Reads a value up to an unescaped ',' (",," is a literal ','), returning the index of that ',' or the end.</summary>
    private static int ReadValue(string text, int p, out string value)
    {
        var builder = new System.Text.StringBuilder();
        while (true)
        {
            int comma = text.IndexOf(',', p);
            if (comma < 0)
            {
                builder.Append(text, p, text.Length - p);
                value = builder.ToString();
                return text.Length;
            }

            if (comma + 1 < text.Length && text[comma + 1] == ',')
            {
                builder.Append(text, p, comma + 1 - p);
                p = comma + 2;
                continue;
            }

            builder.Append(text, p, comma - p);
            value = builder.ToString();
            return comma;
        }
    }

    private static int IndexOfAny(string text, int start, char a, char b)
    {
        int index = text.AsSpan(start).IndexOfAny(a, b);
        return index < 0 ? text.Length : start + index;
    }
}
