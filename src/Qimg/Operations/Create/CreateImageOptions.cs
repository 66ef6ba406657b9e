using Qimg.Block;
using Qimg.Formats;

namespace Qimg.Operations.Create;

/// <summary>What to create (the arguments of <c>qemu-img create</c>).</summary>
public sealed record CreateImageOptions
{
    /// <summary>The image file to create.</summary>
    public required string FileName { get; init; }

    /// <summary>The format name (<c>-f</c>); raw by default, as in qemu-img.</summary>
    public string Format { get; init; } = "raw";

    /// <summary>The backing file to name in the new image (<c>-b</c>), or null.</summary>
    public string? BackingFile { get; init; }

    /// <summary>The backing file's format (<c>-F</c>), or null. Required with a backing file since QEMU 7.2.</summary>
    public string? BackingFormat { get; init; }

    /// <summary>The <c>-o</c> option string ("cluster_size=4k,lazy_refcounts=on"), or null.</summary>
    public string? Options { get; init; }

    /// <summary>The virtual size; null takes it from <c>-o size=</c> or from the backing file.</summary>
    public ulong? Size { get; init; }

    /// <summary>Do not open the backing file (<c>-u</c>): its format must then be given, and the size too.</summary>
    public bool SkipBackingOpen { get; init; }

    /// <summary>The formats and protocols to use.</summary>
    public FormatRegistry Registry { get; init; } = FormatRegistry.Default;

    /// <summary>The gate for files the new image or its backing chain name.</summary>
    public ImplicitOpenPolicy Policy { get; init; } = ImplicitOpenPolicy.Permissive;

    /// <summary>Receives warnings in qemu-img's words; null drops them.</summary>
    public Action<string>? Warning { get; init; }
}
