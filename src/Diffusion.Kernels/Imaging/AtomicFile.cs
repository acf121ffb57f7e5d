using System.Text;
using System.Text.RegularExpressions;
using Diffusion.Kernels.IO;

namespace Diffusion.Kernels.Imaging;

/// <summary>
/// Writes a file so that readers see either the old file or the complete new one, never a torn write: the
/// content goes to a temporary file in the same folder (same file system, so the rename is atomic), which is
/// renamed over the destination only after it was written and flushed. On failure or cancellation the temporary
/// file is deleted. Only a regular file or a symbolic link is ever replaced: a folder, FIFO or device node in the
/// destination's place is refused, whatever <c>overwrite</c> says.
/// </summary>
public static partial class AtomicFile
{
    /// <summary>The longest file name (one path component) Linux file systems and macOS accept, in bytes.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>".", 32 hex digits, ".tmp" and the leading dot around the destination's name.</summary>
    private const int TemporaryNameOverhead = 1 + 1 + 32 + 4;

    /// <param name="path">Destination.</param>
    /// <param name="overwrite">When false, an existing destination makes this throw <see cref="IOException"/>.</param>
    /// <param name="write">Writes the content into the temporary file's stream.</param>
    public static void Write(string path, bool overwrite, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        using var pending = Create(path);
        write(pending.Stream);
        pending.Commit(overwrite);
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically, flushed to disk first.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, bool overwrite)
    {
        using var pending = Create(path);
        pending.Stream.Write(bytes);
        pending.Commit(overwrite);
    }

    /// <summary>
    /// Starts a write: the temporary file exists (locked against <see cref="RemoveStaleTemporaries"/>) until
    /// <see cref="PendingFile.Commit"/> renames it or disposing deletes it. Several pending files committed one
    /// after the other are how a caller writes a set of outputs that appear together or not at all.
    /// </summary>
    public static PendingFile Create(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        return new PendingFile(full, TemporaryPathFor(full));
    }

    /// <summary>
    /// Why <paramref name="path"/> must not be replaced, or null when it may be: it is missing, a regular file, or
    /// a symbolic link to one (or to nothing), which is replaced itself. A link to a device is refused like the
    /// device: <c>--out /dev/stdout --force</c> must not swap the system's /dev/stdout link for a PNG.
    /// </summary>
    public static string? ReplaceProblem(string path)
    {
        var kind = PosixFile.KindOf(path, followLinks: false);
        if (kind is FileKind.Missing or FileKind.Regular) return null;
        if (kind != FileKind.SymbolicLink) return $"is {InputFile.Describe(kind)}; only a regular file is ever replaced";
        var target = PosixFile.KindOf(path, followLinks: true);
        return target is FileKind.Missing or FileKind.Regular
            ? null
            : $"is a symbolic link to {InputFile.Describe(target)}; only a regular file (or a link to one) is ever replaced";
    }

    /// <summary>
    /// ".NAME.&lt;32 hex&gt;.tmp" beside the destination, NAME shortened (at a character boundary) so the whole
    /// temporary name fits <see cref="MaxNameBytes"/> whenever the destination's own name does.
    /// </summary>
    public static string TemporaryPathFor(string fullPath)
    {
        string folder = Path.GetDirectoryName(fullPath) ?? ".";
        return Path.Combine(folder, $".{TemporaryStem(Path.GetFileName(fullPath))}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>
    /// Deletes temporary files that an earlier write to <paramref name="path"/> left behind when it was killed
    /// (SIGKILL, a crash, a power cut), and returns their paths. A write in progress holds an exclusive lock on its
    /// temporary file, so a concurrent run's file is never taken for a stale one.
    /// </summary>
    public static IReadOnlyList<string> RemoveStaleTemporaries(string path)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? ".";
        string prefix = $".{TemporaryStem(Path.GetFileName(full))}.";
        var removed = new List<string>();
        IEnumerable<string> candidates;
        try
        {
            // Matched by hand, not by a search pattern: the name itself may hold '*' or '?'.
            candidates = Directory.EnumerateFiles(folder, "*.tmp")
                .Where(f => Path.GetFileName(f).StartsWith(prefix, StringComparison.Ordinal)).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return removed;
        }
        foreach (string candidate in candidates)
        {
            string name = Path.GetFileName(candidate);
            if (!TemporarySuffix().IsMatch(name[prefix.Length..]) || PosixFile.KindOf(candidate, followLinks: false) != FileKind.Regular)
                continue;
            try
            {
                using (new FileStream(candidate, FileMode.Open, FileAccess.Read, FileShare.None))
                    File.Delete(candidate);
                removed.Add(candidate);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Locked by a live writer, or not ours to delete: either way it stays.
            }
        }
        return removed;
    }

    private static string TemporaryStem(string name)
    {
        int budget = MaxNameBytes - TemporaryNameOverhead;
        if (Encoding.UTF8.GetByteCount(name) <= budget) return name;
        var stem = new StringBuilder();
        int bytes = 0;
        foreach (var rune in name.EnumerateRunes())
        {
            if (bytes + rune.Utf8SequenceLength > budget) break;
            bytes += rune.Utf8SequenceLength;
            stem.Append(rune.ToString());
        }
        return stem.ToString();
    }

    [GeneratedRegex("^[0-9a-f]{32}\\.tmp$", RegexOptions.CultureInvariant)]
    private static partial Regex TemporarySuffix();
}

/// <summary>A temporary file being written for <see cref="Destination"/>; see <see cref="AtomicFile.Create"/>.</summary>
public sealed class PendingFile : IDisposable
{
    private bool _committed;

    internal PendingFile(string destination, string temporaryPath)
    {
        Destination = destination;
        TemporaryPath = temporaryPath;
        // FileShare.None takes an exclusive advisory lock (flock) for as long as the stream is open.
        Stream = new FileStream(temporaryPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
    }

    public string Destination { get; }

    public string TemporaryPath { get; }

    /// <summary>The temporary file; write the content here.</summary>
    public FileStream Stream { get; }

    /// <summary>Flushes the content to disk and renames it over the destination.</summary>
    /// <exception cref="UnusableFileException">The destination is a folder, FIFO, device node or socket.</exception>
    public void Commit(bool overwrite)
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        Stream.Flush(flushToDisk: true);
        // Checked again here, not only by callers before their work: rename(2) would replace a device node too.
        if (AtomicFile.ReplaceProblem(Destination) is { } problem) throw new UnusableFileException(Destination, problem);
        // The lock stays held through the rename, so no stale-file sweep can delete the file in between.
        File.Move(TemporaryPath, Destination, overwrite);
        _committed = true;
        Stream.Dispose();
    }

    /// <summary>Deletes the temporary file unless it was committed.</summary>
    public void Dispose()
    {
        try
        {
            Stream.Dispose(); // flushes what is buffered, which fails on a full disk
        }
        catch (IOException) when (!_committed)
        {
            // The content is being thrown away anyway.
        }
        finally
        {
            if (!_committed) File.Delete(TemporaryPath);
        }
    }
}
