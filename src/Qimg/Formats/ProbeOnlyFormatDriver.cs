using Qimg.Block;
using Qimg.Diagnostics;

namespace Qimg.Formats;

/// <summary>
/// A format qimg recognises but cannot open or create yet: it takes part in probing with QEMU's score, so an image of
/// it is never guessed to be raw, and opening or creating one fails with <see cref="FormatNotSupportedException"/>.
/// The format's real driver replaces this base class with <see cref="FormatDriver"/> and keeps its probe as it is.
/// </summary>
public abstract class ProbeOnlyFormatDriver : FormatDriver
{
    public sealed override bool IsImplemented => false;

    public sealed override bool SupportsCreate => false;

    /// <summary>
    /// Whether QEMU 7.2's driver creates images of this format. Creating one then fails as not supported by qimg yet;
    /// for a format QEMU cannot create either, it fails in QEMU's words ("does not support image creation").
    /// </summary>
    public virtual bool QemuSupportsCreate => false;

    /// <exception cref="FormatNotSupportedException">Always.</exception>
    public sealed override ValueTask<FormatNode> OpenAsync(BlockNode file, ImageOpenContext context, CancellationToken cancellationToken = default) =>
        throw new FormatNotSupportedException(Name);

    /// <exception cref="FormatNotSupportedException">Always.</exception>
    public sealed override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken = default) =>
        throw new FormatNotSupportedException(Name);
}
