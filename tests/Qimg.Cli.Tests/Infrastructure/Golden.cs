namespace Qimg.Cli.Tests.Infrastructure;

/// <summary>
/// Golden comparisons: the same argv through real qemu-img and through qimg, with qemu-img's name in its output
/// replaced by qimg's (qemu-img prints its argv[0] basename; qimg prints "qimg").
/// </summary>
public static class Golden
{
    /// <summary>qemu-img's output with its program name replaced by qimg's.</summary>
    public static CommandResult Normalize(CommandResult qemu) =>
        qemu with { Stdout = qemu.Stdout.Replace("qemu-img", "qimg", StringComparison.Ordinal), Stderr = qemu.Stderr.Replace("qemu-img", "qimg", StringComparison.Ordinal) };

    /// <summary>Runs <paramref name="args"/> through both and asserts identical stdout, stderr and exit code.</summary>
    public static CommandResult AssertSame(params string[] args)
    {
        CommandResult expected = Normalize(Tools.QemuImg(args));
        CommandResult actual = Tools.Qimg(args);
        AssertEqual(expected, actual, args);
        return actual;
    }

    /// <summary>
    /// Runs <paramref name="args"/> through qemu-img and through qimg invoked under the name qemu-img (a drop-in install)
    /// and asserts identical output with nothing replaced.
    /// </summary>
    public static CommandResult AssertSameUnderQemuImgName(params string[] args)
    {
        CommandResult expected = Tools.QemuImg(args);
        CommandResult actual = Tools.QimgNamed("qemu-img", args);
        AssertEqual(expected, actual, args);
        return actual;
    }

    /// <summary>Asserts that two results are the same, with a readable diff on failure.</summary>
    public static void AssertEqual(CommandResult expected, CommandResult actual, string[] args)
    {
        if (expected != actual)
        {
            Assert.Fail($"qimg {string.Join(' ', args)}\n=== qemu-img:\n{expected}\n=== qimg:\n{actual}");
        }
    }
}
