namespace Qimg.Cli.Tests.Infrastructure;

/// <summary>
/// Test images made once per test class by qemu-img and qemu-io, in a temporary directory deleted afterwards.
/// Subclasses add their images in their constructor with <see cref="Create"/> and <see cref="Io"/>.
/// </summary>
public abstract class ImageSet : IDisposable
{
    private readonly TempDirectory _directory = new();

    public string Directory => _directory.Path;

    /// <summary>The absolute path of <paramref name="name"/> in the set's directory.</summary>
    public string this[string name] => _directory.File(name);

    /// <summary>Runs <c>qemu-img create -q ARGS</c> with "{dir}" replaced by the directory.</summary>
    protected void Create(params string[] args) => Tools.QemuImgOk(["create", "-q", .. Expand(args)]);

    /// <summary>Runs <c>qemu-img ARGS</c> with "{dir}" replaced by the directory.</summary>
    protected void QemuImg(params string[] args) => Tools.QemuImgOk(Expand(args));

    /// <summary>Runs qemu-io on <paramref name="image"/> with the given commands.</summary>
    protected void Io(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (string command in commands)
        {
            args.Add("-c");
            args.Add(command);
        }

        args.Add(this[image]);
        Tools.QemuIo([.. args]);
    }

    /// <summary>Replaces "{dir}" in every argument by the set's directory.</summary>
    public string[] Expand(IEnumerable<string> args) => args.Select(a => a.Replace("{dir}", Directory, StringComparison.Ordinal)).ToArray();

    public void Dispose()
    {
        _directory.Dispose();
        GC.SuppressFinalize(this);
    }
}
