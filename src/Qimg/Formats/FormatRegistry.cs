using Qimg.Protocols;

namespace Qimg.Formats;

/// <summary>
/// The formats and protocols qimg knows, listed explicitly (no reflection, no scanning). Library users can build a
/// smaller registry, for example one without raw so that probing can never guess it.
/// </summary>
public sealed class FormatRegistry
{
    private readonly FormatDriver[] _formats;
    private readonly ProtocolDriver[] _protocols;

    public FormatRegistry(IEnumerable<FormatDriver> formats, IEnumerable<ProtocolDriver> protocols)
    {
        _formats = formats.ToArray();
        _protocols = protocols.ToArray();
        if (_protocols.Length == 0)
        {
            throw new ArgumentException("A registry needs at least one protocol.", nameof(protocols));
        }
    }

    /// <summary>
    /// Every built-in format and protocol: each format QEMU 7.2 probes, including those qimg recognises but cannot
    /// open yet (<see cref="FormatDriver.IsImplemented"/> false), so that probing never mistakes them for raw.
    /// </summary>
    /// <remarks>
    /// Probing ties go to the format listed first, as in QEMU, whose list order this one keeps where a tie is possible
    /// (measured with qemu-img 7.2): VDI's signature sits at offset 64, so a file can carry it and another magic at
    /// offset 0; parallels and qed then win over vdi, and vdi wins over qcow2, qcow, vmdk, vpc, vhdx and luks. A
    /// cloop image named "*.dmg" is dmg.
    /// </remarks>
    public static FormatRegistry Default { get; } = new(
        [
            Parallels.ParallelsDriver.Instance,
            Qed.QedDriver.Instance,
            Vdi.VdiDriver.Instance,
            Qcow2.Qcow2Driver.Instance,
            Qcow.QcowDriver.Instance,
            Vmdk.VmdkDriver.Instance,
            Vpc.VpcDriver.Instance,
            Vhdx.VhdxDriver.Instance,
            Luks.LuksDriver.Instance,
            Bochs.BochsDriver.Instance,
            Dmg.DmgDriver.Instance,
            Cloop.CloopDriver.Instance,
            Raw.RawDriver.Instance,
        ],
        [Qimg.Protocols.File.FileProtocol.Instance]);

    public IReadOnlyList<FormatDriver> Formats => _formats;

    public IReadOnlyList<ProtocolDriver> Protocols => _protocols;

    /// <summary>The format called <paramref name="name"/>, or null.</summary>
    public FormatDriver? FindFormat(string name) => Array.Find(_formats, f => f.Name == name);

    /// <summary>The protocol that handles <paramref name="fileName"/>; the last one listed (file) is the fallback.</summary>
    public ProtocolDriver GetProtocol(string fileName) => Array.Find(_protocols, p => p.Handles(fileName)) ?? _protocols[^1];

    /// <summary>The protocol called <paramref name="name"/>, or null.</summary>
    public ProtocolDriver? FindProtocol(string name) => Array.Find(_protocols, p => p.Name == name);

    /// <summary>The format with the highest probe score (the first on ties), or null when none scores above 0.</summary>
    public FormatDriver? Probe(ReadOnlySpan<byte> header, string? fileName)
    {
        FormatDriver? best = null;
        int bestScore = 0;
        foreach (FormatDriver format in _formats)
        {
            int score = format.Probe(header, fileName);
            if (score > bestScore)
            {
                best = format;
                bestScore = score;
            }
        }

        return best;
    }
}
