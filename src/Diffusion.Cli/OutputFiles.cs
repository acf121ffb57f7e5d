using Diffusion.Kernels;

namespace Diffusion.Cli;

/// <summary>An output file exists and the user did not pass --force.</summary>
internal sealed class OutputExistsException(string path)
    : DiffusionException($"{path} already exists; pass --force to overwrite it");

internal static class OutputFiles
{
    /// <summary>Checks before any work starts, so a long run never ends in a refused write.</summary>
    public static void EnsureWritable(string path, bool force)
    {
        if (File.Exists(path) && !force) throw new OutputExistsException(path);
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null && !Directory.Exists(directory))
            throw new UsageException($"{path}: the folder {directory} does not exist");
    }

    /// <summary>As <see cref="EnsureWritable"/>, for a file in a folder the command creates itself.</summary>
    public static void EnsureWritableIn(string path, bool force)
    {
        if (File.Exists(path) && !force) throw new OutputExistsException(path);
    }
}
