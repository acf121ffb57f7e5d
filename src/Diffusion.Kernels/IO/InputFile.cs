namespace Diffusion.Kernels.IO;

/// <summary>
/// A path that cannot be read as an input: missing, a folder, a FIFO or device node, a dangling or looping
/// symbolic link, too large. <see cref="Problem"/> completes the sentence "PATH: …", so callers can wrap it in
/// the exception their own failure class calls for (a bad model, a bad input).
/// </summary>
public sealed class UnusableFileException(string path, string problem, Exception? inner = null)
    : IOException($"{path}: {problem}", inner)
{
    public string FilePath { get; } = path;

    public string Problem { get; } = problem;
}

/// <summary>
/// Opens input files only when they are regular files. A FIFO would block open(2) (and a run waiting there
/// ignores Ctrl-C); /dev/zero or /dev/urandom would read forever; a folder or a dangling link deserves its own
/// sentence. Opening without blocking and then asking the open file what it is leaves no window between the
/// check and the use.
/// </summary>
public static class InputFile
{
    public static FileStream OpenRead(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0) throw new UnusableFileException("''", "is an empty path");
        if (!PosixFile.Supported) return OpenManaged(path);

        var handle = PosixFile.OpenNonBlocking(path, out int errno, out string error)
            ?? throw new UnusableFileException(path, OpenProblem(path, errno, error));
        try
        {
            var kind = PosixFile.KindOf(handle);
            if (kind != FileKind.Regular) throw new UnusableFileException(path, $"is {Describe(kind)}, not a regular file");
            return new FileStream(handle, FileAccess.Read, bufferSize: 0);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The whole file, refused as soon as more than <paramref name="maxBytes"/> have arrived: the limit holds
    /// against what is read, not against the length the file system reports (which a growing file outruns).
    /// </summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, string limitReason)
    {
        using var stream = OpenRead(path);
        using var content = new MemoryStream();
        var chunk = new byte[64 << 10];
        try
        {
            while (true)
            {
                int got = stream.Read(chunk);
                if (got == 0) return content.ToArray();
                if (content.Length + got > maxBytes)
                    throw new UnusableFileException(path, $"holds more than {maxBytes:N0} bytes; {limitReason}");
                content.Write(chunk, 0, got);
            }
        }
        catch (Exception e) when (e is IOException and not UnusableFileException)
        {
            throw new UnusableFileException(path, $"cannot be read: {e.Message}", e);
        }
    }

    /// <summary>"a directory", "a FIFO (named pipe)", … for "PATH: is …".</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a directory",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        _ => "missing",
    };

    private static string OpenProblem(string path, int errno, string error)
    {
        if (errno == PosixFile.TooManyLinks) return "is a symbolic link that loops (too many levels of links)";
        if (errno != PosixFile.NoSuchFile) return $"cannot be opened: {error}";
        if (PosixFile.KindOf(path, followLinks: false) == FileKind.SymbolicLink)
            return $"is a symbolic link to '{new FileInfo(path).LinkTarget}', which does not exist";
        return "does not exist";
    }

    private static FileStream OpenManaged(string path)
    {
        if (Directory.Exists(path)) throw new UnusableFileException(path, "is a directory, not a regular file");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1);
        }
        catch (FileNotFoundException e)
        {
            throw new UnusableFileException(path, "does not exist", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UnusableFileException(path, $"cannot be opened: {e.Message}", e);
        }
    }
}
