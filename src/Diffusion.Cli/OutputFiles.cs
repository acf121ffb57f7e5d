using System.Text;
using Diffusion.Kernels;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.IO;

namespace Diffusion.Cli;

/// <summary>An output file exists and the user did not pass --force.</summary>
internal sealed class OutputExistsException(string path)
    : DiffusionException($"{path} already exists; pass --force to overwrite it");

/// <summary>An output cannot be written: a folder or device in its place, a missing or read-only folder, a full disk.</summary>
internal sealed class OutputUnwritableException(string path, string problem, Exception? inner = null)
    : DiffusionException($"{path}: {problem}", inner);

/// <summary>One file a command writes, and how to write its content.</summary>
internal sealed record OutputFile(string Path, Action<Stream> Write);

/// <summary>
/// Every file a command writes goes through here: checked before the work starts, then written together. Each
/// output goes to a locked temporary file beside it; only when all of them are complete (and no signal asked
/// to stop) are they renamed into place, so a failed or interrupted run leaves none of its outputs.
/// </summary>
internal static class OutputFiles
{
    /// <summary>
    /// Checks before any work starts, so a long run never ends in a refused write: the name, what is in its place,
    /// and that its folder takes a new file (by creating and deleting a temporary one). Temporary files that a
    /// killed run left for this destination are removed, and said so on <paramref name="log"/>.
    /// </summary>
    public static void EnsureWritable(string option, string path, bool force, TextWriter log)
    {
        if (path.Length == 0) throw new UsageException($"{option}: the path is empty; give a file name");
        string full = Path.GetFullPath(path);
        string name = Path.GetFileName(full);
        if (name.Length == 0 || PosixFile.KindOf(full, followLinks: true) == FileKind.Directory)
            throw new OutputUnwritableException(path, "is a directory; give a file name");
        int nameBytes = Encoding.UTF8.GetByteCount(name);
        if (nameBytes > AtomicFile.MaxNameBytes)
            throw new OutputUnwritableException(path, $"the file name is {nameBytes} bytes long; file systems allow at most {AtomicFile.MaxNameBytes}");

        if (AtomicFile.ReplaceProblem(full) is { } problem) throw new OutputUnwritableException(path, problem + ", --force or not");
        if (PosixFile.KindOf(full, followLinks: false) != FileKind.Missing && !force) throw new OutputExistsException(path);

        string folder = Path.GetDirectoryName(full)!;
        var folderKind = PosixFile.KindOf(folder, followLinks: true);
        if (folderKind != FileKind.Directory)
        {
            throw new OutputUnwritableException(path, folderKind == FileKind.Missing
                ? $"the folder {folder} does not exist"
                : $"{folder} is {InputFile.Describe(folderKind)}, not a folder");
        }
        foreach (string stale in AtomicFile.RemoveStaleTemporaries(full))
            log.WriteLine($"note: removed {stale}, left by an earlier run that was killed while writing {path}");
        Guard(path, () => AtomicFile.Create(full).Dispose());
    }

    /// <summary>Two outputs of one run naming the same file would overwrite each other.</summary>
    public static void EnsureDistinct(params (string Option, string? Path)[] outputs)
    {
        var given = outputs.Where(o => o.Path is { Length: > 0 }).ToList();
        for (int i = 0; i < given.Count; i++)
        for (int j = i + 1; j < given.Count; j++)
        {
            if (string.Equals(Identity(given[i].Path!), Identity(given[j].Path!), StringComparison.Ordinal))
                throw new UsageException($"{given[i].Option} and {given[j].Option} both name {given[j].Path}; give them different files");
        }
    }

    /// <summary>
    /// Writes every output to its temporary file, then, unless <paramref name="cancellationToken"/> was cancelled
    /// meanwhile, renames them all into place. From the first rename on, a signal no longer stops the commit: it
    /// only sets the token, and the renames take microseconds.
    /// </summary>
    public static void WriteAll(IReadOnlyList<OutputFile> outputs, bool force, CancellationToken cancellationToken)
    {
        var pending = new List<PendingFile>();
        var existed = outputs.Select(o => PosixFile.KindOf(o.Path, followLinks: false) != FileKind.Missing).ToArray();
        try
        {
            foreach (var output in outputs)
            {
                var file = Guard(output.Path, () => AtomicFile.Create(output.Path));
                pending.Add(file);
                Guard(output.Path, () =>
                {
                    output.Write(file.Stream);
                    file.Stream.Flush(flushToDisk: true);
                });
                cancellationToken.ThrowIfCancellationRequested();
            }
            for (int i = 0; i < pending.Count; i++)
            {
                try
                {
                    Guard(outputs[i].Path, () => pending[i].Commit(force));
                }
                catch
                {
                    RollBack(outputs, existed, i);
                    throw;
                }
            }
        }
        finally
        {
            foreach (var file in pending) file.Dispose();
        }
    }

    /// <summary>Removes the outputs committed before output <paramref name="failed"/> failed, where nothing stood before.</summary>
    private static void RollBack(IReadOnlyList<OutputFile> outputs, bool[] existed, int failed)
    {
        for (int i = 0; i < failed; i++)
        {
            if (!existed[i]) File.Delete(outputs[i].Path);
        }
    }

    private static string Identity(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            return File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
            return full;
        }
    }

    private static void Guard(string path, Action action) => Guard(path, () =>
    {
        action();
        return 0;
    });

    /// <summary>Turns a file-system failure into one line about the user's path, never about our temporary name.</summary>
    private static T Guard<T>(string path, Func<T> action)
    {
        try
        {
            return action();
        }
        catch (UnusableFileException e)
        {
            throw new OutputUnwritableException(path, e.Problem, e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new OutputUnwritableException(path, $"cannot be written: permission denied in {Path.GetDirectoryName(Path.GetFullPath(path))}", e);
        }
        catch (IOException e)
        {
            throw new OutputUnwritableException(path, $"cannot be written: {Reason(e)}", e);
        }
    }

    /// <summary>.NET appends the path it was working on (ours, the temporary one) to the system's message; the reason is before it.</summary>
    private static string Reason(IOException e)
    {
        string message = e.Message;
        int at = message.IndexOf(" : '", StringComparison.Ordinal);
        if (at < 0) at = message.IndexOf(" '", StringComparison.Ordinal);
        return (at > 0 ? message[..at] : message).TrimEnd('.', ' ');
    }

    /// <summary>As <see cref="EnsureWritable"/>, for a file in a folder the command creates itself.</summary>
    public static void EnsureWritableIn(string path, bool force)
    {
        if (File.Exists(path) && !force) throw new OutputExistsException(path);
    }
}
