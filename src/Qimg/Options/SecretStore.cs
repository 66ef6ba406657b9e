namespace Qimg.Options;

/// <summary>
/// The secrets defined with <c>--object secret,id=…</c> (QEMU's QCryptoSecret objects), by id. Encryption keys and
/// passphrases are looked up here by the id an image option names (<c>encrypt.key-secret=ID</c>).
/// </summary>
/// <remarks>Not thread-safe for concurrent adds; one store belongs to one command invocation.</remarks>
public sealed class SecretStore
{
    private readonly Dictionary<string, byte[]> _secrets = new(StringComparer.Ordinal);

    /// <summary>The ids defined, in no particular order.</summary>
    public IEnumerable<string> Ids => _secrets.Keys;

    /// <summary>Defines a secret.</summary>
    /// <exception cref="OptionException">The id is already used (QEMU's wording).</exception>
    public void Add(string id, byte[] value)
    {
        if (!_secrets.TryAdd(id, value))
        {
            throw new OptionException($"attempt to add duplicate property '{id}' to object (type 'container')");
        }
    }

    /// <summary>The secret's bytes.</summary>
    /// <exception cref="OptionException">"No secret with id '…'", in QEMU's words.</exception>
    public byte[] Get(string id) =>
        _secrets.TryGetValue(id, out byte[]? value) ? value : throw new OptionException($"No secret with id '{id}'");

    public bool TryGet(string id, out byte[] value)
    {
        bool found = _secrets.TryGetValue(id, out byte[]? stored);
        value = stored ?? [];
        return found;
    }
}
