using System.Buffers.Binary;
using System.Text;
using Diffusion.Kernels.IO;

namespace Diffusion.Kernels.Imaging;

/// <summary>A PNG file whose text cannot be read: not a PNG, truncated, a damaged chunk, or a chunk beyond our limits.</summary>
public sealed class PngFormatException(string filePath, string problem) : DiffusionException($"{filePath}: {problem}")
{
    public string FilePath { get; } = filePath;

    public string Problem { get; } = problem;
}

/// <summary>
/// PNG tEXt chunks (ISO 15948 §11.3.4.3): a keyword of 1–79 Latin-1 characters, a NUL, then Latin-1 text. Reading
/// walks the chunks without loading image data: each chunk's length is checked against what the file still
/// holds before anything is read, text chunks above <see cref="MaxTextChunkBytes"/> and files with more than
/// <see cref="MaxTextChunks"/> of them are refused, and every text chunk's CRC must match, so a damaged or
/// hostile file is one typed error, never a huge allocation.
/// </summary>
public static class PngText
{
    /// <summary>Far above what any generator writes (a prompt and parameters are a few KiB).</summary>
    public const int MaxTextChunkBytes = 1 << 20;

    public const int MaxTextChunks = 64;

    private static readonly Encoding Latin1 = Encoding.Latin1;

    /// <summary>The data of a tEXt chunk; characters outside Latin-1 are refused (JSON can escape them as \uXXXX).</summary>
    public static byte[] Encode(string keyword, string text)
    {
        ArgumentNullException.ThrowIfNull(keyword);
        ArgumentNullException.ThrowIfNull(text);
        if (keyword.Length is < 1 or > 79 || keyword.Any(c => c < 32 || c > 255) || keyword[0] == ' ' || keyword[^1] == ' ')
            throw new ArgumentException($"a PNG text keyword has 1–79 printable Latin-1 characters, got '{keyword}'", nameof(keyword));
        if (text.Any(c => c > 255 || c == 0))
            throw new ArgumentException("PNG tEXt holds Latin-1 text without NUL characters", nameof(text));
        if (keyword.Length + 1 + text.Length > MaxTextChunkBytes)
            throw new ArgumentException($"a text chunk is limited to {MaxTextChunkBytes} bytes", nameof(text));
        var data = new byte[keyword.Length + 1 + text.Length];
        Latin1.GetBytes(keyword, data);
        Latin1.GetBytes(text, data.AsSpan(keyword.Length + 1));
        return data;
    }

    /// <summary>Every tEXt chunk of the PNG file at <paramref name="path"/>, in file order.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream stream;
        try
        {
            stream = InputFile.OpenRead(path);
        }
        catch (UnusableFileException e)
        {
            throw new PngFormatException(path, e.Problem);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PngFormatException(path, e.Message);
        }
        using (stream) return Read(stream, path);
    }

    /// <summary>Every tEXt chunk of a seekable PNG stream, in order; <paramref name="name"/> names it in errors.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("the stream must be seekable", nameof(stream));
        Span<byte> head = stackalloc byte[8];
        if (!TryReadExactly(stream, head) || !head.SequenceEqual(Png.Signature))
            throw new PngFormatException(name, "is not a PNG file (no PNG signature)");

        var result = new List<KeyValuePair<string, string>>();
        bool first = true;
        while (true)
        {
            if (!TryReadExactly(stream, head))
                throw new PngFormatException(name, $"is truncated at byte {stream.Position}: no IEND chunk");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(head);
            string type = Encoding.ASCII.GetString(head[4..]);
            if (length > int.MaxValue)
                throw new PngFormatException(name, $"chunk '{Printable(type)}' at byte {stream.Position - 8} claims {length} bytes, above PNG's limit of 2^31 − 1");
            if (stream.Length - stream.Position < length + 4L)
                throw new PngFormatException(name, $"chunk '{Printable(type)}' at byte {stream.Position - 8} claims {length} bytes, but only {Math.Max(0, stream.Length - stream.Position - 4)} remain");
            if (first && type != "IHDR") throw new PngFormatException(name, $"starts with chunk '{Printable(type)}', not IHDR");
            first = false;
            if (type == "IEND") return result;
            if (type != "tEXt")
            {
                stream.Seek(length + 4L, SeekOrigin.Current); // data and CRC
                continue;
            }
            if (length > MaxTextChunkBytes)
                throw new PngFormatException(name, $"tEXt chunk at byte {stream.Position - 8} holds {length} bytes, above our limit of {MaxTextChunkBytes}");
            if (result.Count == MaxTextChunks)
                throw new PngFormatException(name, $"holds more than {MaxTextChunks} tEXt chunks");
            var data = new byte[length + 4];
            if (!TryReadExactly(stream, data)) throw new PngFormatException(name, "is truncated inside a tEXt chunk");
            uint crc = Crc32.Update(Crc32.Update(Crc32.Initial, head[4..]), data.AsSpan(0, (int)length)) ^ 0xFFFFFFFFu;
            if (crc != BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan((int)length)))
                throw new PngFormatException(name, $"tEXt chunk at byte {stream.Position - length - 12} fails its CRC check (the file is damaged)");
            int nul = Array.IndexOf(data, (byte)0, 0, (int)length);
            if (nul is < 1 or > 79)
                throw new PngFormatException(name, $"tEXt chunk at byte {stream.Position - length - 12} has no keyword of 1–79 characters ended by NUL");
            result.Add(new(Latin1.GetString(data, 0, nul), Latin1.GetString(data, nul + 1, (int)length - nul - 1)));
        }
    }

    private static bool TryReadExactly(Stream stream, Span<byte> buffer) =>
        stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) == buffer.Length;

    private static string Printable(string type) => new(type.Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());
}
