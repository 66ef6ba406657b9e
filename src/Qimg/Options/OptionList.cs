using System.Globalization;
using System.Text;

namespace Qimg.Options;

/// <summary>
/// Operations on lists of <see cref="OptionDescriptor"/>s (QEMU's <c>QemuOptsList</c>): merging a format's list with
/// its protocol's, the <c>-o help</c> listing, and the <c>name=value</c> summary of qemu-img's "Formatting" line.
/// </summary>
public static class OptionList
{
    /// <summary>The descriptor called <paramref name="name"/>, or null.</summary>
    public static OptionDescriptor? Find(IReadOnlyList<OptionDescriptor> descriptors, string name)
    {
        foreach (OptionDescriptor descriptor in descriptors)
        {
            if (descriptor.Name == name)
            {
                return descriptor;
            }
        }

        return null;
    }

    /// <summary>The descriptors of all lists in order, each name once: the first list to define a name wins (QEMU's <c>qemu_opts_append</c>).</summary>
    public static IReadOnlyList<OptionDescriptor> Merge(params IReadOnlyList<OptionDescriptor>[] lists)
    {
        var merged = new List<OptionDescriptor>();
        foreach (IReadOnlyList<OptionDescriptor> list in lists)
        {
            foreach (OptionDescriptor descriptor in list)
            {
                if (Find(merged, descriptor.Name) is null)
                {
                    merged.Add(descriptor);
                }
            }
        }

        return merged;
    }

    /// <summary>
    /// The option lines of <c>-o help</c> ("  name=&lt;type&gt;   - help"), sorted as QEMU sorts them, each ending in a
    /// newline (QEMU's <c>qemu_opts_print_help</c> without caption).
    /// </summary>
    public static string FormatHelp(IReadOnlyList<OptionDescriptor> descriptors)
    {
        var lines = new List<string>(descriptors.Count);
        foreach (OptionDescriptor descriptor in descriptors)
        {
            var line = new StringBuilder();
            line.Append("  ").Append(descriptor.Name).Append("=<").Append(descriptor.TypeHint).Append('>');
            if (descriptor.Help.Length != 0)
            {
                if (line.Length < 24)
                {
                    line.Append(' ', 24 - line.Length);
                }

                line.Append(" - ").Append(descriptor.Help);
            }

            lines.Add(line.ToString());
        }

        lines.Sort(CompareUtf8);
        var text = new StringBuilder();
        foreach (string line in lines)
        {
            text.Append(line).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>
    /// The values of <paramref name="values"/> (or the defaults) in descriptor order, as QEMU's <c>qemu_opts_print</c>
    /// prints them: sizes and numbers as parsed (signed decimal), other values as given with ',' doubled; options
    /// without value or default are left out.
    /// </summary>
    public static string FormatSummary(IReadOnlyList<OptionDescriptor> descriptors, OptionValues values, string separator = " ")
    {
        var text = new StringBuilder();
        string sep = string.Empty;
        foreach (OptionDescriptor descriptor in descriptors)
        {
            bool set = values.TryGet(descriptor.Name, out string given);
            string? value = set ? given : descriptor.DefaultValue;
            if (value is null)
            {
                continue;
            }

            text.Append(sep).Append(descriptor.Name).Append('=');
            if (descriptor.Type == OptionType.String)
            {
                text.Append(value.Replace(",", ",,", StringComparison.Ordinal));
            }
            else if (set && descriptor.Type == OptionType.Size)
            {
                text.Append(((long)OptionValues.ParseSize(descriptor.Name, value)).ToString(CultureInfo.InvariantCulture));
            }
            else if (set && descriptor.Type == OptionType.Number)
            {
                text.Append(((long)OptionValues.ParseNumber(descriptor.Name, value)).ToString(CultureInfo.InvariantCulture));
            }
            else
            {
                text.Append(value);
            }

            sep = separator;
        }

        return text.ToString();
    }

    /// <summary>strcmp order (bytes of the UTF-8 encoding).</summary>
    private static int CompareUtf8(string a, string b)
    {
        // Ordinal UTF-16 comparison equals UTF-8 byte order outside the surrogate range, which option texts never use.
        return string.CompareOrdinal(a, b);
    }
}
