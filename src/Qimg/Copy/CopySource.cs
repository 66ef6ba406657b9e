using Qimg.Block;

namespace Qimg.Copy;

/// <summary>One source of a copy: the node to read, and where its block-status walk stops.</summary>
/// <param name="Node">The image to read (with its backing chain attached).</param>
/// <param name="StatusBase">
/// The backing node at which allocation queries stop (exclusive), or null for the whole chain. With a target backing
/// file this is the source's own backing node, so that only what the top layer holds is copied.
/// </param>
public sealed record CopySource(BlockNode Node, BlockNode? StatusBase = null);
