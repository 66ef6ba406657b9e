using System.Text;
using System.Text.Json;

namespace Qimg.Options;

/// <summary>
/// A <c>--object</c> definition (QEMU's user-creatable objects): "qom-type,id=…,prop=value…" or a JSON object. qimg
/// creates the objects qemu-img needs, which are secrets; other types are refused.
/// </summary>
public static class UserObject
{
    /// <summary>The object types qimg can create (for "--object help").</summary>
    public static IReadOnlyList<string> Types { get; } = ["secret"];

    private static readonly string[] s_secretProperties = ["data", "file", "format", "iv", "keyid"];

    /// <summary>
    /// Processes one <c>--object</c> argument: defines the object in <paramref name="secrets"/>, or returns the help
    /// text asked for with "help" (the caller prints it and exits successfully).
    /// </summary>
    /// <exception cref="OptionException">The definition is invalid (QEMU's wording).</exception>
    public static string? Process(string text, SecretStore secrets)
    {
        List<KeyValuePair<string, string>> properties = Parse(text, out bool helpWanted);
        string? type = properties.Find(p => p.Key == "qom-type").Value;
        if (type is null || OptionString.IsHelpOption(type))
        {
            if (type is null && !helpWanted)
            {
                throw new OptionException("Parameter 'qom-type' is missing");
            }

            return "List of user creatable objects:\n" + string.Concat(Types.Select(t => $"  {t}\n"));
        }

        if (type != "secret")
        {
            throw new OptionException($"Parameter 'qom-type' does not accept value '{type}'");
        }

        if (helpWanted)
        {
            return "secret options:\n  data=<string>\n  file=<string>\n  format=<QCryptoSecretFormat>\n  iv=<string>\n  keyid=<string>\n";
        }

        string? id = null;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach ((string key, string value) in properties)
        {
            if (key == "qom-type")
            {
                continue;
            }

            if (key == "id")
            {
                id = value;
            }
            else if (Array.IndexOf(s_secretProperties, key) >= 0)
            {
                values[key] = value;
            }
            else
            {
                throw new OptionException($"Parameter '{key}' is unexpected");
            }
        }

        if (id is null)
        {
            throw new OptionException("Parameter 'id' is missing");
        }

        secrets.Add(id, LoadSecret(values));
        return null;
    }

    private static byte[] LoadSecret(Dictionary<string, string> values)
    {
        byte[] input;
        if (values.TryGetValue("file", out string? file))
        {
            if (values.ContainsKey("data"))
            {
                throw new OptionException("'file' and 'data' are mutually exclusive");
            }

            try
            {
                input = File.ReadAllBytes(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                string reason = e switch
                {
                    FileNotFoundException or DirectoryNotFoundException => "No such file or directory",
                    UnauthorizedAccessException => "Permission denied",
                    _ => e.Message,
                };
                throw new OptionException($"Unable to read {file}: Failed to open file \u201c{file}\u201d: {reason}");
            }
        }
        else if (values.TryGetValue("data", out string? data))
        {
            input = Encoding.UTF8.GetBytes(data);
        }
        else
        {
            throw new OptionException("Either 'file' or 'data' must be provided");
        }

        if (values.ContainsKey("keyid"))
        {
            // TODO: AES-256-CBC encrypted secrets (keyid + iv) are not supported yet.
            throw new OptionException("Encrypted secrets (keyid) are not supported by qimg");
        }

        string format = values.GetValueOrDefault("format", "raw");
        return format switch
        {
            "raw" => input,
            "base64" => DecodeBase64(input),
            _ => throw new OptionException($"Parameter 'format' does not accept value '{format}'"),
        };
    }

    /// <summary>QEMU's <c>qbase64_decode</c>: only base64 characters and newlines, decoded leniently as GLib does.</summary>
    private static byte[] DecodeBase64(byte[] input)
    {
        const string valid = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n";
        if (Array.IndexOf(input, (byte)0) >= 0)
        {
            throw new OptionException("Base64 data contains embedded NUL characters");
        }

        var output = new List<byte>(input.Length * 3 / 4);
        int accumulator = 0;
        int bits = 0;
        foreach (byte b in input)
        {
            if (valid.IndexOf((char)b) < 0)
            {
                throw new OptionException("Base64 data contains invalid characters");
            }

            int value = valid.IndexOf((char)b);
            if (value >= 64)
            {
                // '=' and newlines carry no bits.
                continue;
            }

            accumulator = (accumulator << 6) | value;
            bits += 6;
            if (bits >= 8)
            {
                bits -= 8;
                output.Add((byte)(accumulator >> bits));
                accumulator &= (1 << bits) - 1;
            }
        }

        return output.ToArray();
    }

    private static List<KeyValuePair<string, string>> Parse(string text, out bool helpWanted)
    {
        helpWanted = false;
        if (text.StartsWith('{'))
        {
            return ParseJson(text);
        }

        var properties = new List<KeyValuePair<string, string>>();
        foreach (OptionPair pair in OptionString.Split(text, "qom-type", out helpWanted))
        {
            if (pair.Name == "help" && pair.Value == "on")
            {
                helpWanted = true;
                continue;
            }

            properties.Add(new(pair.Name, pair.Value));
        }

        return properties;
    }

    private static List<KeyValuePair<string, string>> ParseJson(string text)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(text);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new OptionException("Invalid JSON object given");
            }

            var properties = new List<KeyValuePair<string, string>>();
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                string value = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString()!,
                    JsonValueKind.True => "on",
                    JsonValueKind.False => "off",
                    _ => property.Value.GetRawText(),
                };
                properties.Add(new(property.Name, value));
            }

            return properties;
        }
        catch (JsonException e)
        {
            throw new OptionException($"JSON parse error, {e.Message}");
        }
    }
}
