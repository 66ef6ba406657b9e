namespace Qimg.Operations.Compare;

/// <summary>How two images compared (qemu-img compare's outcomes).</summary>
public enum CompareOutcome
{
    /// <summary>Same guest content ("Images are identical.", exit 0).</summary>
    Identical,
    /// <summary>Content differs at <see cref="CompareResult.Offset"/> ("Content mismatch at offset N!", exit 1).</summary>
    ContentMismatch,
    /// <summary>Strict mode, different sizes ("Strict mode: Image size mismatch!", exit 1).</summary>
    StrictSizeMismatch,
    /// <summary>Strict mode, different block status at <see cref="CompareResult.Offset"/> (exit 1).</summary>
    StrictBlockStatusMismatch,
}

/// <summary>The result of <see cref="ImageComparer.CompareAsync"/>.</summary>
/// <param name="Outcome">What was found.</param>
/// <param name="Offset">The guest offset of the mismatch (a multiple of 512), or -1.</param>
/// <param name="SizeMismatch">
/// The images have different sizes and their common part is identical: qemu-img prints "Warning: Image size
/// mismatch!" before the final line, and the longer image's tail must read as zeroes for the images to be identical.
/// </param>
public sealed record CompareResult(CompareOutcome Outcome, long Offset, bool SizeMismatch)
{
    public bool AreIdentical => Outcome == CompareOutcome.Identical;
}

/// <summary>Compare failed; <see cref="ExitCode"/> is qemu-img's (3 allocation status, 4 read error).</summary>
public sealed class CompareException : IOException
{
    public CompareException(string message, int exitCode, Exception? innerException = null)
        : base(message, innerException)
    {
        ExitCode = exitCode;
    }

    public int ExitCode { get; }
}
