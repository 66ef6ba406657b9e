using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;
using Qimg.Operations;
using Qimg.Protocols;

namespace Qimg;

/// <summary>
/// Entry points for library users: open an image (probing its format and opening its backing chain, as qemu-img does).
/// </summary>
public static class DiskImage
{
    /// <summary>How many bytes format probing looks at (QEMU's BLOCK_PROBE_BUF_SIZE).</summary>
    public const int ProbeSize = 512;

    /// <summary>Deepest backing chain qimg follows before calling it a loop or an attack.</summary>
    public const int MaxBackingDepth = 64;

    /// <summary>
    /// Opens <paramref name="fileName"/>: the protocol node, then the format (given or probed), then, unless told
    /// not to, its backing chain through the open policy. The caller owns the returned node.
    /// </summary>
    /// <exception cref="ImageOpenException">The image or a backing file cannot be opened (qemu-img's wording).</exception>
    /// <exception cref="InvalidDataException">The image is malformed.</exception>
    /// <exception cref="NotSupportedException">The image needs a feature qimg lacks.</exception>
    public static ValueTask<FormatNode> OpenAsync(string fileName, ImageOpenOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ImageOpenOptions();
        if (fileName.StartsWith("json:", StringComparison.Ordinal))
        {
            // QEMU's json: pseudo-protocol: the options are in the name; a given format wins over the name's driver.
            return OpenAsync(ImageSource.FromFileName(fileName, options.Format), options, cancellationToken);
        }

        return OpenChainAsync(fileName, options, [], options.Permissions, null, cancellationToken);
    }

    /// <summary>
    /// Opens the image <paramref name="source"/> describes (its file name, format and driver options replace those of
    /// <paramref name="options"/>), with its backing chain as <see cref="OpenAsync(string, ImageOpenOptions?, CancellationToken)"/> does.
    /// </summary>
    /// <exception cref="ImageOpenException">The image or a backing file cannot be opened (qemu-img's wording).</exception>
    /// <exception cref="InvalidDataException">The image is malformed.</exception>
    /// <exception cref="NotSupportedException">The image needs a feature qimg lacks.</exception>
    public static ValueTask<FormatNode> OpenAsync(ImageSource source, ImageOpenOptions? options = null, CancellationToken cancellationToken = default)
    {
        options = (options ?? new ImageOpenOptions()) with { Format = source.Format, DriverOptions = source.DriverOptions };
        return OpenChainAsync(source.FileName, options, [], options.Permissions, null, cancellationToken);
    }

    /// <summary>
    /// Opens, without its backing chain, a file that <paramref name="referencedBy"/> names as its backing file (its name
    /// already resolved, as <c>info --backing-chain</c> walks a chain one image at a time): the open policy authorizes
    /// it and confines the open itself, exactly as when the chain is opened as a whole.
    /// </summary>
    /// <exception cref="ImplicitOpenDeniedException">The policy refuses the file.</exception>
    internal static ValueTask<FormatNode> OpenNamedBackingAsync(string referencedBy, string fileName, ImageOpenOptions options, CancellationToken cancellationToken)
    {
        ImageSource source = SourceFor(fileName, options.Format);
        (ImplicitOpenRequest Request, string? Beneath) named = AuthorizeBacking(options.Policy, referencedBy, source);
        options = options with { Format = source.Format, DriverOptions = source.DriverOptions, NoBacking = true };
        return OpenChainAsync(source.FileName, options, [], options.Permissions, named, cancellationToken);
    }

    /// <summary>The source a resolved name stands for: "json:{…}" names parsed (a given format wins), others as they are.</summary>
    private static ImageSource SourceFor(string name, string? format) =>
        name.StartsWith("json:", StringComparison.Ordinal) ? ImageSource.FromFileName(name, format) : new ImageSource(name, format, null);

    /// <summary>
    /// Passes a backing file named by <paramref name="referencedBy"/> through the open policy; returns the request and
    /// the directory the open must stay beneath, for <see cref="OpenChainAsync"/>.
    /// </summary>
    /// <exception cref="ImplicitOpenDeniedException">The policy refuses the file.</exception>
    private static (ImplicitOpenRequest Request, string? Beneath) AuthorizeBacking(ImplicitOpenPolicy policy, string referencedBy, ImageSource source)
    {
        var request = new ImplicitOpenRequest(ImplicitOpenKind.Backing, referencedBy, source.FileName, source.Format);
        policy.Authorize(request);
        return (request, policy.ConfineTo(request));
    }

    /// <summary>
    /// The source a backing name found in <paramref name="imageFileName"/> stands for: relative names are taken
    /// relative to the image, "json:{…}" names are parsed as QEMU does (with the image's backing format winning over
    /// the name's driver).
    /// </summary>
    /// <exception cref="ImageOpenException">A "json:" name that does not parse or describes nothing qimg can open.</exception>
    public static ImageSource ResolveBacking(string imageFileName, string backingName, string? backingFormat)
    {
        return SourceFor(ResolveRelativeTo(imageFileName, backingName), backingFormat);
    }

    /// <param name="permissions">What the users of this image need and share: the caller's for the top image, what the
    /// image above asks of its backing file for the others (QEMU's permission propagation, which decides the image
    /// locks each file takes).</param>
    /// <param name="named">For a file an image names: the request the policy allowed and the directory it confines the open to.</param>
    private static async ValueTask<FormatNode> OpenChainAsync(string fileName, ImageOpenOptions options, List<string> chain, PermissionPair permissions, (ImplicitOpenRequest Request, string? Beneath)? named, CancellationToken cancellationToken)
    {
        FormatNode image = await OpenOneAsync(fileName, options, permissions, named, cancellationToken).ConfigureAwait(false);
        try
        {
            if (!options.NoBacking && image.BackingFileName is { Length: > 0 } backingName)
            {
                // An empty backing format (an extension holding only NULs) means "probe", as in QEMU.
                string? backingFormat = string.IsNullOrEmpty(image.BackingFormat) ? null : image.BackingFormat;
                FormatNode backing;
                try
                {
                    ImageSource source = ResolveBacking(image.FileName, backingName, backingFormat);
                    chain.Add(CanonicalPath(image.FileName));
                    if (chain.Contains(CanonicalPath(source.FileName)) || chain.Count >= MaxBackingDepth)
                    {
                        throw new ImageOpenException($"Backing file '{backingName}' creates an infinite loop.");
                    }

                    (ImplicitOpenRequest Request, string? Beneath) backingRequest = AuthorizeBacking(options.Policy, image.FileName, source);
                    var backingOptions = options with
                    {
                        Format = source.Format,
                        ReadOnly = true,
                        DriverOptions = source.DriverOptions,
                    };
                    backing = await OpenChainAsync(source.FileName, backingOptions, chain, permissions.ForCowChild(), backingRequest, cancellationToken).ConfigureAwait(false);
                }
                catch (ImageOpenException e) when (e.Message.EndsWith("creates an infinite loop.", StringComparison.Ordinal))
                {
                    throw;
                }
                catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException
                    && e is not ImplicitOpenDeniedException)
                {
                    throw new ImageOpenException("Could not open backing file: " + e.Message, e);
                }

                image.AttachBacking(backing);
            }

            return image;
        }
        catch
        {
            await image.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Opens one image without its backing chain.</summary>
    private static async ValueTask<FormatNode> OpenOneAsync(string fileName, ImageOpenOptions options, PermissionPair permissions, (ImplicitOpenRequest Request, string? Beneath)? named, CancellationToken cancellationToken)
    {
        FormatRegistry registry = options.Registry;
        FormatDriver? format = null;
        if (options.Format is not null)
        {
            format = registry.FindFormat(options.Format)
                ?? throw new ImageOpenException($"Unknown driver '{options.Format}'");
        }

        ProtocolDriver protocol = FindProtocol(registry, fileName);
        CacheMode cache = options.Cache;
        if (options.DriverOptions?.GetString(ImageSource.DirectOption) is string direct)
        {
            // cache.direct from --image-opts or json: wins over the command's cache mode for this file, as in QEMU.
            cache = cache with { Direct = direct == "on" };
        }

        var protocolOptions = new ProtocolOpenOptions(options.ReadOnly, cache, options.ForceShare, options.Locking);
        BlockNode file = await OpenFileAsync(protocol, fileName, protocolOptions, named, cancellationToken).ConfigureAwait(false);
        try
        {
            bool probed = false;
            if (format is null)
            {
                format = await ProbeAsync(file, fileName, registry, cancellationToken).ConfigureAwait(false);
                probed = true;
            }

            // Take the file's image locks before the format reads or writes anything, as QEMU does when it attaches
            // the file child: a conflicting user elsewhere fails the open here.
            file.SetPermissions(format.GetFilePermissions(permissions, !options.ReadOnly, options.NoIo, options.DriverOptions));
            var context = new ImageOpenContext(options, fileName, probed, permissions);
            return await format.OpenAsync(file, context, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The protocol for a name (QEMU's <c>bdrv_find_protocol</c>): a "&lt;protocol&gt;:" prefix no protocol handles is
    /// "Unknown protocol", anything else without one goes to the file protocol.
    /// </summary>
    private static ProtocolDriver FindProtocol(FormatRegistry registry, string fileName)
    {
        ProtocolDriver protocol = registry.GetProtocol(fileName);
        if (!protocol.Handles(fileName) && ImagePaths.ProtocolOf(fileName) is string prefix)
        {
            throw new ImageOpenException($"Unknown protocol '{prefix}'");
        }

        return protocol;
    }

    /// <summary>
    /// Opens a protocol node; for a file an image names (<paramref name="named"/>), confined to the directory the policy
    /// gave, so that a name leading outside fails as an <see cref="ImplicitOpenDeniedException"/>.
    /// </summary>
    internal static async ValueTask<BlockNode> OpenFileAsync(ProtocolDriver protocol, string fileName, ProtocolOpenOptions options, (ImplicitOpenRequest Request, string? Beneath)? named, CancellationToken cancellationToken)
    {
        if (named is not ({ } request, string beneath))
        {
            return await protocol.OpenAsync(fileName, options, cancellationToken).ConfigureAwait(false);
        }

        if (!protocol.CanOpenBeneath)
        {
            throw new ImplicitOpenDeniedException(request, $"'{request.FileName}' (named by '{request.ReferencedBy}') cannot be opened confined to '{beneath}'");
        }

        try
        {
            return await protocol.OpenAsync(fileName, options with { Beneath = beneath }, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (e.HResult == Interop.Libc.EXDEV)
        {
            throw new ImplicitOpenDeniedException(request, $"'{request.FileName}' (named by '{request.ReferencedBy}') leads outside '{beneath}'");
        }
    }

    /// <summary>Picks the format of <paramref name="file"/> from its first bytes (empty files are raw, as in QEMU).</summary>
    /// <exception cref="ImageOpenException">No format recognises the file.</exception>
    public static async ValueTask<FormatDriver> ProbeAsync(BlockNode file, string fileName, FormatRegistry registry, CancellationToken cancellationToken = default)
    {
        FormatDriver? found;
        if (file.Length == 0)
        {
            found = registry.FindFormat("raw");
        }
        else
        {
            byte[] header = new byte[ProbeSize];
            try
            {
                await file.ReadAsync(0, header, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new ImageOpenException("Could not read image for determining its format: " + e.Message, e);
            }

            found = registry.Probe(header, fileName);
        }

        return found ?? throw new ImageOpenException("Could not determine image format: No compatible driver found");
    }

    /// <summary>
    /// Resolves a file name found inside <paramref name="imageFileName"/> as QEMU does: absolute names and protocol
    /// names ("nbd:…", "json:…") stay as they are, relative names are taken relative to the image's directory.
    /// </summary>
    public static string ResolveRelativeTo(string imageFileName, string name)
    {
        if (name.Length == 0 || name[0] == '/' || HasProtocolPrefix(name))
        {
            return name;
        }

        int slash = imageFileName.LastIndexOf('/');
        return slash < 0 ? name : imageFileName[..(slash + 1)] + name;
    }

    private static bool HasProtocolPrefix(string name)
    {
        int colon = name.IndexOf(':');
        int slash = name.IndexOf('/');
        return colon > 0 && (slash < 0 || colon < slash);
    }

    private static string CanonicalPath(string path)
    {
        try
        {
            string full = Path.GetFullPath(path);
            return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return path;
        }
    }
}
