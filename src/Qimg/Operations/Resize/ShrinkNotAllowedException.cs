namespace Qimg.Operations.Resize;

/// <summary>
/// A resize would shrink the image but shrinking was not asked for (<c>--shrink</c>). qemu-img prints the error and
/// then <see cref="Warning"/> as a warning.
/// </summary>
public sealed class ShrinkNotAllowedException : OperationException
{
    public ShrinkNotAllowedException()
        : base("Use the --shrink option to perform a shrink operation.")
    {
    }

    /// <summary>The warning qemu-img prints after the error.</summary>
    public static string Warning =>
        "Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, " +
        "make sure there is no important data there.";
}
