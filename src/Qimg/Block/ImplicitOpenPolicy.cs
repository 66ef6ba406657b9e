namespace Qimg.Block;

/// <summary>Why a file named inside an image is about to be opened.</summary>
public enum ImplicitOpenKind
{
    /// <summary>A backing file named in an image header.</summary>
    Backing,
    /// <summary>An external data file (qcow2 <c>data_file</c>).</summary>
    DataFile,
    /// <summary>An extent or other file named in a descriptor (vmdk).</summary>
    Extent,
}

/// <summary>A request to open a file that an image names in its own metadata.</summary>
/// <param name="Kind">What the file is to the image.</param>
/// <param name="ReferencedBy">The file name of the image naming it.</param>
/// <param name="FileName">The resolved file name to be opened.</param>
/// <param name="Format">The format the header gives for it, or null when it will be probed.</param>
public readonly record struct ImplicitOpenRequest(ImplicitOpenKind Kind, string ReferencedBy, string FileName, string? Format);

/// <summary>Thrown when an <see cref="ImplicitOpenPolicy"/> refuses to open a file named inside an image.</summary>
public sealed class ImplicitOpenDeniedException : IOException
{
    public ImplicitOpenDeniedException(ImplicitOpenRequest request, string reason)
        : base(reason)
    {
        Request = request;
    }

    public ImplicitOpenRequest Request { get; }
}

/// <summary>
/// The gate every file named inside an image header (backing files, data files, extents) passes through before it
/// is opened. Image headers are guest- or attacker-controlled in many pipelines; a library user can deny such
/// opens, or restrict them to a directory or to explicit formats. The CLI uses <see cref="Permissive"/>, which
/// mirrors qemu-img.
/// </summary>
/// <remarks>
/// An opener asks <see cref="Authorize"/> first, then <see cref="ConfineTo"/>: when that names a directory, the file is
/// opened beneath it in the same step that resolves its name (see <see cref="Protocols.ProtocolOpenOptions.Beneath"/>),
/// so no link inside the directory, and no link swapped in between, can lead the open outside. A check of the name
/// alone, separate from the open, cannot give that guarantee.
/// </remarks>
public class ImplicitOpenPolicy
{
    /// <summary>Opens whatever an image names, probing formats when the header does not give one (qemu-img's behaviour).</summary>
    public static ImplicitOpenPolicy Permissive { get; } = new();

    /// <summary>Refuses every implicit open: images with backing or data files fail to open.</summary>
    public static ImplicitOpenPolicy DenyAll { get; } = new DenyAllPolicy();

    /// <summary>
    /// Allows only files inside <paramref name="directory"/> and, when given, only the listed formats. The open itself is
    /// confined to the directory: every link and ".." on the way is resolved by the kernel beneath it (openat2's
    /// RESOLVE_BENEATH, or a component-by-component walk on kernels without it), so links inside the directory that stay
    /// inside work, and any that lead out, anywhere in the name, make the open fail with
    /// <see cref="ImplicitOpenDeniedException"/>. Names with a protocol other than "file:" are refused.
    /// </summary>
    public static ImplicitOpenPolicy RestrictTo(string directory, IReadOnlyCollection<string>? formats = null, bool allowProbing = false) =>
        new DirectoryPolicy(directory, formats, allowProbing);

    /// <summary>Throws <see cref="ImplicitOpenDeniedException"/> when the request is not allowed.</summary>
    public virtual void Authorize(ImplicitOpenRequest request)
    {
    }

    /// <summary>
    /// The directory an allowed request must be opened beneath (resolved and opened in one step), or null to open the
    /// name as it is. Called after <see cref="Authorize"/> allowed the request.
    /// </summary>
    public virtual string? ConfineTo(ImplicitOpenRequest request) => null;

    private sealed class DenyAllPolicy : ImplicitOpenPolicy
    {
        public override void Authorize(ImplicitOpenRequest request) =>
            throw new ImplicitOpenDeniedException(request, $"Opening '{request.FileName}' (named by '{request.ReferencedBy}') is not allowed by the open policy");
    }

    private sealed class DirectoryPolicy : ImplicitOpenPolicy
    {
        private readonly string _directory;
        private readonly IReadOnlyCollection<string>? _formats;
        private readonly bool _allowProbing;

        public DirectoryPolicy(string directory, IReadOnlyCollection<string>? formats, bool allowProbing)
        {
            _directory = Path.GetFullPath(directory);
            _formats = formats;
            _allowProbing = allowProbing;
        }

        public override void Authorize(ImplicitOpenRequest request)
        {
            // A first look at the name for a clear early refusal; the confined open (ConfineTo) is what enforces it.
            if (Operations.ImagePaths.ProtocolOf(request.FileName) is string protocol && protocol != "file")
            {
                throw new ImplicitOpenDeniedException(request, $"'{request.FileName}' (named by '{request.ReferencedBy}') is not a file inside '{_directory}'");
            }

            if (Protocols.File.ConfinedOpen.RelativeBeneath(_directory, Protocols.File.FileProtocol.PathOf(request.FileName)) is null)
            {
                throw Outside(request);
            }

            if (request.Format is null && !_allowProbing && request.Kind == ImplicitOpenKind.Backing)
            {
                throw new ImplicitOpenDeniedException(request, $"'{request.ReferencedBy}' does not name the format of '{request.FileName}' and probing is not allowed");
            }

            if (request.Format is not null && _formats is not null && !_formats.Contains(request.Format))
            {
                throw new ImplicitOpenDeniedException(request, $"Format '{request.Format}' of '{request.FileName}' is not allowed");
            }
        }

        public override string? ConfineTo(ImplicitOpenRequest request) => _directory;

        private ImplicitOpenDeniedException Outside(ImplicitOpenRequest request) =>
            new(request, $"'{request.FileName}' (named by '{request.ReferencedBy}') is outside '{_directory}'");
    }
}
