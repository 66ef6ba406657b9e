using System.Globalization;
using System.Text.Json;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Options;

namespace Qimg.Operations;

/// <summary>
/// Which image to open and how, from what a qemu-img user can type: a file name (possibly "json:{…}") with an optional
/// <c>-f</c> format, or an <c>--image-opts</c> option string ("driver=qcow2,file.filename=disk.qcow2,…").
/// </summary>
/// <param name="FileName">The file to open (protocol prefix included, if any).</param>
/// <param name="Format">The format; null probes the file.</param>
/// <param name="DriverOptions">Options for the format driver beyond driver and file name, or null.</param>
public sealed record ImageSource(string FileName, string? Format, OptionValues? DriverOptions)
{
    /// <summary>Options every block node accepts (QEMU's common runtime options), ignored by qimg.</summary>
    private static readonly string[] s_commonOptions =
    [
        "node-name", "read-only", "auto-read-only", "force-share", "cache.direct", "cache.no-flush", "discard", "detect-zeroes",
    ];

    /// <summary>
    /// The driver option that carries <c>cache.direct</c> (or <c>file.cache.direct</c>) to the opener, which opens the
    /// file with O_DIRECT when it is "on" whatever the command's cache mode.
    /// </summary>
    public const string DirectOption = "cache.direct";

    /// <summary>The options of QEMU's file protocol.</summary>
    private static readonly string[] s_fileOptions =
    [
        "filename", "driver", "locking", "aio", "aio-max-batch", "pr-manager", "drop-cache", "x-check-cache-dropped",
    ];

    /// <summary>The runtime options QEMU's format drivers accept (checked so that typos fail as in qemu-img).</summary>
    private static readonly Dictionary<string, string[]> s_formatOptions = new(StringComparer.Ordinal)
    {
        ["raw"] = ["offset", "size"],
        ["qcow2"] =
        [
            "data-file", "lazy-refcounts", "pass-discard-request", "pass-discard-snapshot", "pass-discard-other",
            "overlap-check", "overlap-check.template", "overlap-check.main-header", "overlap-check.active-l1",
            "overlap-check.active-l2", "overlap-check.refcount-table", "overlap-check.refcount-block",
            "overlap-check.snapshot-table", "overlap-check.inactive-l1", "overlap-check.inactive-l2",
            "overlap-check.bitmap-directory", "cache-size", "l2-cache-size", "l2-cache-entry-size",
            "refcount-cache-size", "cache-clean-interval", "backing", "encrypt.key-secret", "encrypt.format",
        ],
    };

    /// <summary>
    /// The source for a file name and <c>-f</c>: "json:{…}" names are parsed into driver options, anything else is
    /// opened as it is.
    /// </summary>
    /// <exception cref="ImageOpenException">A "json:" name that is not a JSON object, or bad options in it.</exception>
    public static ImageSource FromFileName(string fileName, string? format = null)
    {
        if (!fileName.StartsWith("json:", StringComparison.Ordinal))
        {
            return new ImageSource(fileName, format, null);
        }

        List<KeyValuePair<string, string>> options = ParseJson(fileName[5..]);
        if (format is not null)
        {
            options.Add(new("driver", format));
        }

        return FromOptions(options);
    }

    /// <summary>The source for an <c>--image-opts</c> option string (an implied first name means "file").</summary>
    /// <exception cref="ImageOpenException">Options that do not describe an image qimg can open (qemu-img's wording).</exception>
    public static ImageSource FromImageOptions(string optionString, Action<string>? warning = null)
    {
        IReadOnlyList<OptionPair> pairs = OptionString.Split(optionString, "file", out _, flagWarning: warning);
        var options = new List<KeyValuePair<string, string>>(pairs.Count);
        foreach (OptionPair pair in pairs)
        {
            // "id" too: qemu-img passes it on to the driver, which refuses it.
            options.Add(new(pair.Name, pair.Value));
        }

        return FromOptions(options);
    }

    private static ImageSource FromOptions(List<KeyValuePair<string, string>> options)
    {
        // Later values win, as in a QDict.
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach ((string key, string value) in options)
        {
            if (!values.ContainsKey(key))
            {
                order.Add(key);
            }

            values[key] = value;
        }

        values.TryGetValue("driver", out string? driver);
        values.TryGetValue("file", out string? fileReference);
        bool hasFileOptions = order.Exists(k => k.StartsWith("file.", StringComparison.Ordinal));
        if (fileReference is not null)
        {
            throw new ImageOpenException($"Cannot find device='{fileReference}' nor node-name='{fileReference}'");
        }

        if (driver is null && !hasFileOptions)
        {
            throw new ImageOpenException("Must specify either driver or file");
        }

        if (driver is not null && FormatRegistry.Default.FindProtocol(driver) is not null)
        {
            throw new ImageOpenException($"Opening the protocol driver '{driver}' directly as an image is not supported by qimg");
        }

        values.TryGetValue("file.driver", out string? protocol);
        if (protocol is not null && FormatRegistry.Default.FindProtocol(protocol) is null && protocol != "host_device")
        {
            throw new ImageOpenException($"Unknown driver '{protocol}'");
        }

        if (!values.TryGetValue("file.filename", out string? fileName))
        {
            // A named protocol driver without its file name fails in the driver (QEMU's bdrv_open_common).
            throw new ImageOpenException(protocol is not null
                ? $"The '{protocol}' block driver requires a file name"
                : "A block device must be specified for \"file\"");
        }

        var driverOptions = new OptionValues();
        foreach (string key in order)
        {
            string value = values[key];
            if (key is "cache.direct" or "file.cache.direct")
            {
                // O_DIRECT for the file (QEMU passes the node's cache options down to its file child); the opener
                // reads it from the driver options.
                driverOptions.Set(DirectOption, OptionValues.ParseBool(key, value) ? "on" : "off");
                continue;
            }

            if (key == "driver" || Array.IndexOf(s_commonOptions, key) >= 0)
            {
                continue;
            }

            if (key.StartsWith("file.", StringComparison.Ordinal))
            {
                string option = key[5..];
                if (Array.IndexOf(s_fileOptions, option) < 0 && Array.IndexOf(s_commonOptions, option) < 0)
                {
                    throw new ImageOpenException($"Block protocol '{protocol ?? "file"}' doesn't support the option '{option}'");
                }

                continue;
            }

            if (driver is not null && s_formatOptions.TryGetValue(driver, out string[]? known) && Array.IndexOf(known, key) < 0
                && !key.StartsWith("backing.", StringComparison.Ordinal))
            {
                throw new ImageOpenException($"Block format '{driver}' does not support the option '{key}'");
            }

            driverOptions.Set(key, value);
        }

        return new ImageSource(fileName, driver, driverOptions.Count == 0 ? null : driverOptions);
    }

    /// <summary>
    /// QEMU's wording for the commonest JSON errors (nothing at all, a bare word); other errors get a generic text,
    /// since QEMU's parser and System.Text.Json stop at different places.
    /// </summary>
    private static string DescribeJsonError(string json, JsonException e)
    {
        if (json.Trim().Length == 0)
        {
            return "Expecting a JSON value";
        }

        int position = (int)Math.Min(e.BytePositionInLine ?? 0, json.Length);
        while (position > 0 && char.IsAsciiLetter(json[position - 1]))
        {
            position--;
        }

        if (e.LineNumber == 0 && position < json.Length && char.IsAsciiLetter(json[position]))
        {
            int end = position;
            while (end < json.Length && char.IsAsciiLetterOrDigit(json[end]))
            {
                end++;
            }

            return $"JSON parse error, invalid keyword '{json[position..end]}'";
        }

        return "JSON parse error";
    }

    /// <summary>Flattens a JSON object into "a.b.c" keys (QEMU's <c>qdict_flatten</c>).</summary>
    private static List<KeyValuePair<string, string>> ParseJson(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(ToStandardJson(json));
        }
        catch (JsonException e)
        {
            throw new ImageOpenException($"Could not parse the JSON options: {DescribeJsonError(json, e)}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ImageOpenException("Invalid JSON object given");
            }

            var options = new List<KeyValuePair<string, string>>();
            Flatten(document.RootElement, string.Empty, options);
            return options;
        }
    }

    /// <summary>
    /// QEMU's JSON dialect as standard JSON: strings may also be single-quoted (with <c>\'</c> for a quote, and
    /// <c>"</c> as an ordinary character), and <c>\'</c> is a valid escape in double-quoted strings too.
    /// </summary>
    private static string ToStandardJson(string json)
    {
        if (!json.Contains('\''))
        {
            return json;
        }

        var text = new System.Text.StringBuilder(json.Length + 8);
        char quote = '\0';
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (quote == '\0')
            {
                if (c is '"' or '\'')
                {
                    quote = c;
                    c = '"';
                }

                text.Append(c);
            }
            else if (c == '\\' && i + 1 < json.Length)
            {
                char next = json[++i];
                if (next == '\'')
                {
                    text.Append('\'');
                }
                else
                {
                    text.Append(c).Append(next);
                }
            }
            else if (c == quote)
            {
                quote = '\0';
                text.Append('"');
            }
            else if (c == '"')
            {
                text.Append("\\\"");
            }
            else
            {
                text.Append(c);
            }
        }

        return text.ToString();
    }

    private static void Flatten(JsonElement element, string prefix, List<KeyValuePair<string, string>> options)
    {
        foreach (JsonProperty property in element.EnumerateObject())
        {
            string key = prefix + property.Name;
            switch (property.Value.ValueKind)
            {
                case JsonValueKind.Object:
                    Flatten(property.Value, key + ".", options);
                    break;
                case JsonValueKind.String:
                    options.Add(new(key, property.Value.GetString()!));
                    break;
                case JsonValueKind.True:
                    options.Add(new(key, "on"));
                    break;
                case JsonValueKind.False:
                    options.Add(new(key, "off"));
                    break;
                case JsonValueKind.Number:
                    options.Add(new(key, property.Value.TryGetInt64(out long number) ? number.ToString(CultureInfo.InvariantCulture) : property.Value.GetRawText()));
                    break;
                default:
                    options.Add(new(key, property.Value.GetRawText()));
                    break;
            }
        }
    }
}
