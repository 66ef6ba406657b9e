using System.Collections;

namespace Qimg.Formats;

/// <summary>
/// An ordered tree of named values (QEMU's QAPI objects as a QDict): the format-specific part of <c>info</c>.
/// The CLI renders it both as JSON (keys as given) and as human text (QEMU's dump: '-' in keys becomes ' ').
/// </summary>
/// <remarks>Values are <see cref="string"/>, <see cref="long"/>, <see cref="ulong"/>, <see cref="bool"/>,
/// <see cref="double"/>, <see cref="InfoObject"/> or <see cref="InfoList"/>.</remarks>
public sealed class InfoObject : IEnumerable<KeyValuePair<string, object>>
{
    private readonly List<KeyValuePair<string, object>> _entries = [];

    public int Count => _entries.Count;

    /// <summary>Appends an entry; order is kept as added.</summary>
    public InfoObject Add(string key, object value)
    {
        if (value is int i)
        {
            value = (long)i;
        }
        else if (value is uint u)
        {
            value = (long)u;
        }

        if (value is not (string or long or ulong or bool or double or InfoObject or InfoList))
        {
            throw new ArgumentException($"Unsupported info value type {value.GetType().Name}", nameof(value));
        }

        _entries.Add(new(key, value));
        return this;
    }

    public object? this[string key] => _entries.FirstOrDefault(e => e.Key == key).Value;

    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>An ordered list of info values (a QList).</summary>
public sealed class InfoList : IEnumerable<object>
{
    private readonly List<object> _items = [];

    public int Count => _items.Count;

    public InfoList Add(object value)
    {
        _items.Add(value is int i ? (long)i : value);
        return this;
    }

    public IEnumerator<object> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
