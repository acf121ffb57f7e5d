using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using Diffusion.Kernels.Imaging;

namespace Diffusion.Kernels.IO;

/// <summary>A tensor given as bytes already in its stored dtype (little-endian), for writing any dtype.</summary>
public sealed record SafetensorsRawTensor(string Name, SafetensorsDType DType, int[] Shape, byte[] Data);

/// <summary>
/// Writes safetensors files: the header (metadata first, then tensors in the order given) padded with spaces to
/// a multiple of 8 bytes, then the tensors back to back. Files are written through <see cref="AtomicFile"/>, so a
/// reader never sees half a file.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Writes float32 tensors stored as <paramref name="dtype"/> (F32, F16 or BF16; halves round to nearest even).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, HostTensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentNullException.ThrowIfNull(path);
        var entries = FloatEntries(tensors, dtype);
        AtomicFile.Write(path, overwrite: true, stream => WriteStream(stream, entries, metadata));
    }

    /// <summary>The same file content written to <paramref name="stream"/>, for callers that manage the file themselves.</summary>
    public static void WriteTo(Stream stream, IEnumerable<KeyValuePair<string, HostTensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentNullException.ThrowIfNull(stream);
        WriteStream(stream, FloatEntries(tensors, dtype), metadata);
    }

    /// <summary>Writes tensors whose bytes are already in their stored dtype.</summary>
    public static void WriteRaw(string path, IEnumerable<SafetensorsRawTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = tensors.Select(t =>
        {
            long expected = HostTensor.Count(t.Shape) * t.DType.ElementSize();
            if (t.Data.Length != expected)
                throw new ArgumentException($"tensor '{t.Name}': shape [{string.Join(", ", t.Shape)}] of {t.DType} needs {expected} bytes, got {t.Data.Length}");
            return new Entry(t.Name, t.DType, t.Shape, t.Data.Length, (stream, _) => stream.Write(t.Data));
        }).ToList();
        AtomicFile.Write(path, overwrite: true, stream => WriteStream(stream, entries, metadata));
    }

    private sealed record Entry(string Name, SafetensorsDType DType, int[] Shape, long ByteLength, Action<Stream, byte[]> WriteData);

    private static List<Entry> FloatEntries(IEnumerable<KeyValuePair<string, HostTensor>> tensors, SafetensorsDType dtype)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (dtype is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
            throw new ArgumentException($"float32 tensors can be stored as F32, F16 or BF16, not {dtype}", nameof(dtype));
        return tensors.Select(kv => new Entry(kv.Key, dtype, kv.Value.Shape, kv.Value.Data.Length * (long)dtype.ElementSize(),
            (stream, buffer) => WriteConverted(stream, kv.Value.Data, dtype, buffer))).ToList();
    }

    private static void WriteStream(Stream stream, List<Entry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        byte[] header = BuildHeader(entries, metadata);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        var buffer = new byte[1 << 16];
        foreach (var entry in entries) entry.WriteData(stream, buffer);
    }

    private static byte[] BuildHeader(List<Entry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var json = new MemoryStream();
        // Relaxed escaping keeps names like "to_out.0" and '+' readable; the output is still valid JSON.
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                writer.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata) writer.WriteString(key, value);
                writer.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in entries)
            {
                if (entry.Name == SafetensorsHeader.MetadataKey)
                    throw new ArgumentException($"'{SafetensorsHeader.MetadataKey}' is reserved and cannot name a tensor");
                if (!names.Add(entry.Name))
                    throw new ArgumentException($"tensor '{entry.Name}' is given twice");
                writer.WriteStartObject(entry.Name);
                writer.WriteString("dtype", entry.DType.ToString());
                writer.WriteStartArray("shape");
                foreach (int d in entry.Shape) writer.WriteNumberValue(d);
                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(offset);
                writer.WriteNumberValue(offset + entry.ByteLength);
                writer.WriteEndArray();
                writer.WriteEndObject();
                offset += entry.ByteLength;
            }
            writer.WriteEndObject();
        }
        // Padding the header keeps the data section 8-byte aligned, as the reference writer does.
        int padded = (int)((json.Length + 7) / 8 * 8);
        var header = new byte[padded];
        json.ToArray().CopyTo(header, 0);
        header.AsSpan((int)json.Length).Fill((byte)' ');
        return header;
    }

    private static void WriteConverted(Stream stream, float[] data, SafetensorsDType dtype, byte[] buffer)
    {
        int size = dtype.ElementSize();
        int perChunk = buffer.Length / size;
        for (int start = 0; start < data.Length; start += perChunk)
        {
            int count = Math.Min(perChunk, data.Length - start);
            ElementConversion.FromFloat32(data.AsSpan(start, count), dtype, buffer);
            stream.Write(buffer, 0, count * size);
        }
    }
}
