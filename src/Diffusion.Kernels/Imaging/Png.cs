using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Diffusion.Kernels.Imaging;

/// <summary>
/// A minimal PNG encoder (RFC 2083 / ISO 15948): signature, IHDR, the tEXt chunks given (keyword, NUL, Latin-1
/// text), one zlib-compressed IDAT, IEND, each chunk closed by its CRC-32. 8-bit grayscale or RGB, no
/// interlacing, filter "None" on every row: enough for every viewer, and simple enough to read in one sitting.
/// <see cref="PngText"/> reads the text back.
/// </summary>
public static class Png
{
    internal static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Writes the samples (a grid when batched, each pixel a <paramref name="scale"/>² block) to
    /// <paramref name="path"/> atomically (see <see cref="AtomicFile"/>).
    /// </summary>
    public static void Save(string path, HostTensor samples, bool overwrite = true, int scale = 1,
        IReadOnlyList<KeyValuePair<string, string>>? text = null) =>
        AtomicFile.WriteAllBytes(path, Encode(ImageGrid.FromSamples(samples, scale), text), overwrite);

    /// <summary>The PNG file of <paramref name="image"/>, with one tEXt chunk per entry of <paramref name="text"/>, in order.</summary>
    public static byte[] Encode(Image8 image, IReadOnlyList<KeyValuePair<string, string>>? text = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        byte colorType = image.Channels switch
        {
            1 => 0, // grayscale
            3 => 2, // truecolour
            _ => throw new ArgumentException($"PNG encoder supports 1 or 3 channels, got {image.Channels}", nameof(image)),
        };
        if (image.Pixels.Length != (long)image.Width * image.Height * image.Channels)
            throw new ArgumentException("pixel buffer does not match the image size", nameof(image));

        using var file = new MemoryStream();
        file.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], image.Height);
        header[8] = 8; // bits per sample
        header[9] = colorType;
        header[10] = 0; // compression: deflate
        header[11] = 0; // filter method 0
        header[12] = 0; // no interlace
        WriteChunk(file, "IHDR", header);
        foreach (var (keyword, value) in text ?? []) WriteChunk(file, "tEXt", PngText.Encode(keyword, value));

        WriteChunk(file, "IDAT", CompressRows(image));
        WriteChunk(file, "IEND", []);
        return file.ToArray();
    }

    /// <summary>Each scanline is its filter-type byte (0, None) followed by the row's bytes, all zlib-compressed.</summary>
    private static byte[] CompressRows(Image8 image)
    {
        int stride = image.Width * image.Channels;
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (int y = 0; y < image.Height; y++)
            {
                zlib.WriteByte(0);
                zlib.Write(image.Pixels, y * stride, stride);
            }
        }
        return compressed.ToArray();
    }

    /// <summary>length (big-endian), type, data, CRC-32 of type and data.</summary>
    internal static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        Span<byte> typeBytes = stackalloc byte[4];
        Encoding.ASCII.GetBytes(type, typeBytes);
        output.Write(typeBytes);
        output.Write(data);
        uint crc = Crc32.Update(Crc32.Update(Crc32.Initial, typeBytes), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        output.Write(word);
    }
}

/// <summary>
/// CRC-32 as PNG defines it (ISO 3309 / ITU-T V.42: reflected polynomial 0xEDB88320, register starting at all
/// ones, final value inverted), one byte at a time from a 256-entry table.
/// </summary>
internal static class Crc32
{
    public const uint Initial = 0xFFFFFFFFu;

    private static readonly uint[] Table = BuildTable();

    /// <summary>Feeds <paramref name="data"/> into a running (not yet inverted) register.</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    public static uint Compute(ReadOnlySpan<byte> data) => Update(Initial, data) ^ 0xFFFFFFFFu;

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
