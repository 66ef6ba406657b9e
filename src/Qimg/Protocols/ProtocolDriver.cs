using Qimg.Block;
using Qimg.Options;

namespace Qimg.Protocols;

/// <summary>How a protocol node is opened.</summary>
/// <param name="ReadOnly">Open without write access.</param>
/// <param name="Cache">Cache mode (O_DIRECT, write-through, no flush).</param>
/// <param name="ForceShare">Do not take QEMU's image locks that would conflict with other users (<c>-U</c>).</param>
/// <param name="Locking">Take QEMU's OFD image locks at all (QEMU's <c>locking=auto|on|off</c>, as true/false).</param>
public sealed record ProtocolOpenOptions(bool ReadOnly, CacheMode Cache, bool ForceShare = false, bool Locking = true)
{
    /// <summary>
    /// When set, the file must be opened beneath this directory: its name is resolved and opened in one step, and a
    /// name that leads outside (through "..", an absolute name, or a link anywhere on the way) fails with an
    /// <see cref="IOException"/> whose HResult is EXDEV (18). Only protocols with <see cref="ProtocolDriver.CanOpenBeneath"/>
    /// accept it (an <see cref="Block.ImplicitOpenPolicy"/> asks for it).
    /// </summary>
    public string? Beneath { get; init; }
}

/// <summary>
/// A protocol: where bytes live (a local file, an NBD export…). Stateless descriptor; opening returns a
/// <see cref="BlockNode"/> with <see cref="BlockNode.IsProtocol"/> set.
/// </summary>
public abstract class ProtocolDriver
{
    /// <summary>QEMU's protocol driver name ("file").</summary>
    public abstract string Name { get; }

    /// <summary>The create options this protocol adds to a format's (<c>-o help</c> with a file name).</summary>
    public virtual IReadOnlyList<OptionDescriptor> CreateOptions => [];

    /// <summary>True when <see cref="OpenAsync"/> honours <see cref="ProtocolOpenOptions.Beneath"/>; openers refuse a
    /// confined open through a protocol that cannot.</summary>
    public virtual bool CanOpenBeneath => false;

    /// <summary>True when this protocol handles <paramref name="fileName"/> (by prefix, like "nbd:").</summary>
    public abstract bool Handles(string fileName);

    /// <summary>Opens <paramref name="fileName"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission denied.</exception>
    /// <exception cref="IOException">Any other failure, including a conflicting lock.</exception>
    public abstract ValueTask<BlockNode> OpenAsync(string fileName, ProtocolOpenOptions options, CancellationToken cancellationToken = default);

    /// <summary>Creates (or truncates) <paramref name="fileName"/> with <paramref name="size"/> bytes, honouring the protocol's create options.</summary>
    public virtual ValueTask CreateAsync(string fileName, long size, OptionValues options, CancellationToken cancellationToken = default) =>
        CreateAsync(fileName, size, options, null, cancellationToken);

    /// <summary>
    /// Creates (or truncates) <paramref name="fileName"/> with <paramref name="size"/> bytes, honouring the protocol's
    /// create options; non-fatal problems go to <paramref name="warning"/> (text after qemu-img's "warning: " prefix).
    /// </summary>
    public virtual ValueTask CreateAsync(string fileName, long size, OptionValues options, Action<string>? warning, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException($"Protocol driver '{Name}' does not support image creation");

    /// <summary>
    /// Creates like <see cref="CreateAsync(string, long, OptionValues, Action{string}?, CancellationToken)"/> and returns
    /// what a failed format creation may remove again, or null when there is nothing this protocol can safely remove.
    /// </summary>
    internal virtual async ValueTask<CreatedFile?> CreateTrackedAsync(string fileName, long size, OptionValues options, Action<string>? warning, CancellationToken cancellationToken)
    {
        await CreateAsync(fileName, size, options, warning, cancellationToken).ConfigureAwait(false);
        return null;
    }
}
