using System.Globalization;
using System.Text;
using Qimg.Formats;

namespace Qimg.Cli.Output;

/// <summary>
/// QEMU's JSON writer (<c>qobject/json-writer.c</c>) in its pretty mode, byte for byte: 4-space indentation,
/// <c>"key": value</c>, empty containers as "{" newline "}", integers in decimal, doubles as <c>%.17g</c>, and strings
/// with '"', '\\', \b \f \n \r \t escaped and every other character outside 0x20..0x7E as \uXXXX (uppercase hex,
/// surrogate pairs beyond the BMP).
/// </summary>
internal sealed class QemuJsonWriter
{
    private readonly StringBuilder _text = new();
    private readonly List<bool> _containerIsArray = [];
    private readonly bool _pretty;
    private bool _needComma;

    public QemuJsonWriter(bool pretty = true)
    {
        _pretty = pretty;
    }

    /// <summary>The JSON written so far.</summary>
    public override string ToString() => _text.ToString();

    public void StartObject(string? name = null)
    {
        MaybeCommaName(name);
        _text.Append('{');
        EnterContainer(false);
    }

    public void EndObject()
    {
        LeaveContainer();
        PrettyNewline();
        _text.Append('}');
    }

    public void StartArray(string? name = null)
    {
        MaybeCommaName(name);
        _text.Append('[');
        EnterContainer(true);
    }

    public void EndArray()
    {
        LeaveContainer();
        PrettyNewline();
        _text.Append(']');
    }

    public void Bool(string? name, bool value)
    {
        MaybeCommaName(name);
        _text.Append(value ? "true" : "false");
    }

    public void Null(string? name)
    {
        MaybeCommaName(name);
        _text.Append("null");
    }

    public void Int64(string? name, long value)
    {
        MaybeCommaName(name);
        _text.Append(value.ToString(CultureInfo.InvariantCulture));
    }

    public void UInt64(string? name, ulong value)
    {
        MaybeCommaName(name);
        _text.Append(value.ToString(CultureInfo.InvariantCulture));
    }

    public void Double(string? name, double value)
    {
        MaybeCommaName(name);
        _text.Append(CFormat.G(value, 17));
    }

    public void String(string? name, string value)
    {
        MaybeCommaName(name);
        AppendQuoted(value);
    }

    /// <summary>Writes an info value (string, number, bool, <see cref="InfoObject"/> in QDict order, <see cref="InfoList"/>).</summary>
    public void Value(string? name, object value)
    {
        switch (value)
        {
            case string s:
                String(name, s);
                break;
            case long l:
                Int64(name, l);
                break;
            case ulong u:
                UInt64(name, u);
                break;
            case bool b:
                Bool(name, b);
                break;
            case double d:
                Double(name, d);
                break;
            case InfoObject obj:
                StartObject(name);
                foreach (KeyValuePair<string, object> entry in QDictOrder.Sort(obj))
                {
                    Value(entry.Key, entry.Value);
                }

                EndObject();
                break;
            case InfoList list:
                StartArray(name);
                foreach (object item in list)
                {
                    Value(null, item);
                }

                EndArray();
                break;
            default:
                throw new ArgumentException($"Unsupported value type {value.GetType().Name}", nameof(value));
        }
    }

    private void EnterContainer(bool isArray)
    {
        _containerIsArray.Add(isArray);
        _needComma = false;
    }

    private void LeaveContainer()
    {
        _containerIsArray.RemoveAt(_containerIsArray.Count - 1);
        _needComma = true;
    }

    private bool InObject => _containerIsArray.Count != 0 && !_containerIsArray[^1];

    private void PrettyNewline()
    {
        if (_pretty)
        {
            _text.Append('\n').Append(' ', _containerIsArray.Count * 4);
        }
    }

    private void MaybeCommaName(string? name)
    {
        if (_needComma)
        {
            _text.Append(',');
            if (_pretty)
            {
                PrettyNewline();
            }
            else
            {
                _text.Append(' ');
            }
        }
        else
        {
            if (_text.Length != 0)
            {
                PrettyNewline();
            }

            _needComma = true;
        }

        if (InObject)
        {
            AppendQuoted(name ?? string.Empty);
            _text.Append(": ");
        }
    }

    private void AppendQuoted(string value)
    {
        _text.Append('"');
        foreach (Rune rune in value.EnumerateRunes())
        {
            int cp = rune.Value;
            switch (cp)
            {
                case '"':
                    _text.Append("\\\"");
                    break;
                case '\\':
                    _text.Append("\\\\");
                    break;
                case '\b':
                    _text.Append("\\b");
                    break;
                case '\f':
                    _text.Append("\\f");
                    break;
                case '\n':
                    _text.Append("\\n");
                    break;
                case '\r':
                    _text.Append("\\r");
                    break;
                case '\t':
                    _text.Append("\\t");
                    break;
                default:
                    if (cp > 0xFFFF)
                    {
                        _text.Append(CultureInfo.InvariantCulture, $"\\u{0xD800 + ((cp - 0x10000) >> 10):X4}\\u{0xDC00 + ((cp - 0x10000) & 0x3FF):X4}");
                    }
                    else if (cp < 0x20 || cp >= 0x7F)
                    {
                        _text.Append(CultureInfo.InvariantCulture, $"\\u{cp:X4}");
                    }
                    else
                    {
                        _text.Append((char)cp);
                    }

                    break;
            }
        }

        _text.Append('"');
    }
}
