using Qimg.Block;
using Qimg.Diagnostics;
using Qimg.Formats;
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
        return OpenChainAsync(fileName, options, [], options.Permissions, cancellationToken);
    }

    /// <param name="permissions">What the users of this image need and share: the caller's for the top image, what the
    /// image above asks of its backing file for the others (QEMU's permission propagation, which decides the image
    /// locks each file takes).</param>
    private static async ValueTask<FormatNode> OpenChainAsync(string fileName, ImageOpenOptions options, List<string> chain, PermissionPair permissions, CancellationToken cancellationToken)
    {
        FormatNode image = await OpenOneAsync(fileName, options, permissions, cancellationToken).ConfigureAwait(false);
        try
        {
            if (!options.NoBacking && image.BackingFileName is { Length: > 0 } backingName)
            {
                string resolved = ResolveRelativeTo(image.FileName, backingName);
                chain.Add(CanonicalPath(image.FileName));
                if (chain.Contains(CanonicalPath(resolved)) || chain.Count >= MaxBackingDepth)
                {
                    throw new ImageOpenException($"Backing file '{backingName}' creates an infinite loop.");
                }

                // An empty backing format (an extension holding only NULs) means "probe", as in QEMU.
                string? backingFormat = string.IsNullOrEmpty(image.BackingFormat) ? null : image.BackingFormat;
                options.Policy.Authorize(new ImplicitOpenRequest(ImplicitOpenKind.Backing, image.FileName, resolved, backingFormat));
                var backingOptions = options with
                {
                    Format = backingFormat,
                    ReadOnly = true,
                    DriverOptions = null,
                };
                FormatNode backing;
                try
                {
                    backing = await OpenChainAsync(resolved, backingOptions, chain, permissions.ForCowChild(), cancellationToken).ConfigureAwait(false);
                }
                catch (ImageOpenException e) when (e.Message.EndsWith("creates an infinite loop.", StringComparison.Ordinal))
                {
                    throw;
                }
                catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
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
    private static async ValueTask<FormatNode> OpenOneAsync(string fileName, ImageOpenOptions options, PermissionPair permissions, CancellationToken cancellationToken)
    {
        FormatRegistry registry = options.Registry;
        FormatDriver? format = null;
        if (options.Format is not null)
        {
            format = registry.FindFormat(options.Format)
                ?? throw new ImageOpenException($"Unknown driver '{options.Format}'");
        }

        ProtocolDriver protocol = registry.GetProtocol(fileName);
        BlockNode file = await protocol.OpenAsync(fileName, new ProtocolOpenOptions(options.ReadOnly, options.Cache, options.ForceShare, options.Locking), cancellationToken).ConfigureAwait(false);
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
