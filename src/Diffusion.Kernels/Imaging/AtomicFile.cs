namespace Diffusion.Kernels.Imaging;

/// <summary>
/// Writes a file so that readers see either the old file or the complete new one, never a torn write: the
/// content goes to a temporary file in the same folder (same file system, so the rename is atomic), which is
/// renamed over the destination only after it was written and flushed. On failure or cancellation the temporary
/// file is deleted.
/// </summary>
public static class AtomicFile
{
    /// <param name="path">Destination.</param>
    /// <param name="overwrite">When false, an existing destination makes this throw <see cref="IOException"/>.</param>
    /// <param name="write">Writes the content to the temporary path it is given.</param>
    public static void Write(string path, bool overwrite, Action<string> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? ".";
        string temporary = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            write(temporary);
            File.Move(temporary, full, overwrite);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically, flushed to disk first.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, bool overwrite)
    {
        byte[] copy = bytes.ToArray();
        Write(path, overwrite, temporary =>
        {
            using var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write);
            stream.Write(copy);
            stream.Flush(flushToDisk: true);
        });
    }
}
