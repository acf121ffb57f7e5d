using System.Text.Json;

namespace Diffusion.Kernels.IO;

/// <summary>
/// Parses and checks a safetensors header. Everything a later read relies on is proven here, once: every name
/// is unique, every dtype known, every byte count equals its shape's, and the tensors tile the data section
/// exactly, so reads never need to check bounds again.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>The reference implementation's limit; a real header is a few hundred bytes per tensor.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public const string MetadataKey = "__metadata__";

    /// <summary>A header nests three levels (root, tensor entry, shape); deeper input is hostile or broken.</summary>
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 8 };

    public static (List<SafetensorsTensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(
        ReadOnlyMemory<byte> json, long dataLength, string path)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, Options);
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException(path, $"the header is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new SafetensorsFormatException(path, $"the header must be a JSON object, not {document.RootElement.ValueKind}");

            var tensors = new List<SafetensorsTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            // Enumerating properties (rather than deserializing to a dictionary) sees duplicates that a
            // dictionary would silently collapse to the last one.
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (sawMetadata)
                        throw new SafetensorsFormatException(path, $"the header has '{MetadataKey}' twice");
                    sawMetadata = true;
                    ParseMetadata(property.Value, metadata, path);
                    continue;
                }
                if (!seen.Add(property.Name))
                    throw new SafetensorsFormatException(path, $"tensor '{property.Name}' appears twice in the header");
                tensors.Add(ParseTensor(property.Name, property.Value, path));
            }

            CheckTiling(tensors, dataLength, path);
            return (tensors, metadata);
        }
    }

    private static void ParseMetadata(JsonElement element, Dictionary<string, string> metadata, string path)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new SafetensorsFormatException(path, $"'{MetadataKey}' must be an object of strings, not {element.ValueKind}");
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new SafetensorsFormatException(path, $"metadata '{entry.Name}' must be a string, not {entry.Value.ValueKind}");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new SafetensorsFormatException(path, $"metadata '{entry.Name}' appears twice");
        }
    }

    private static SafetensorsTensorInfo ParseTensor(string name, JsonElement entry, string path)
    {
        if (entry.ValueKind != JsonValueKind.Object)
            throw Problem(path, name, $"its entry must be an object, not {entry.ValueKind}");

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in entry.EnumerateObject())
        {
            ref JsonElement? slot = ref dtypeElement;
            switch (field.Name)
            {
                case "dtype": slot = ref dtypeElement; break;
                case "shape": slot = ref shapeElement; break;
                case "data_offsets": slot = ref offsetsElement; break;
                default: continue; // the reference reader ignores unknown fields too
            }
            if (slot.HasValue) throw Problem(path, name, $"'{field.Name}' appears twice");
            slot = field.Value;
        }

        if (dtypeElement is not { ValueKind: JsonValueKind.String } dtypeValue)
            throw Problem(path, name, "'dtype' is missing or not a string");
        string dtypeName = dtypeValue.GetString()!;
        if (!SafetensorsDTypeExtensions.TryParse(dtypeName, out var dtype))
            throw Problem(path, name, $"unknown dtype '{Truncate(dtypeName)}' (known: {string.Join(", ", Enum.GetNames<SafetensorsDType>())})");

        if (shapeElement is not { ValueKind: JsonValueKind.Array } shapeValue)
            throw Problem(path, name, "'shape' is missing or not an array");
        var shape = new int[shapeValue.GetArrayLength()];
        int i = 0;
        foreach (var dim in shapeValue.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long d))
                throw Problem(path, name, $"shape entry {i} is not an integer");
            if (d < 0) throw Problem(path, name, $"shape entry {i} is negative ({d})");
            if (d > int.MaxValue) throw Problem(path, name, $"shape entry {i} ({d}) is larger than {int.MaxValue}");
            shape[i++] = (int)d;
        }

        if (offsetsElement is not { ValueKind: JsonValueKind.Array } offsetsValue || offsetsValue.GetArrayLength() != 2)
            throw Problem(path, name, "'data_offsets' is missing or not an array of two integers");
        long begin = ReadOffset(offsetsValue[0], path, name, "begin");
        long end = ReadOffset(offsetsValue[1], path, name, "end");
        if (begin > end) throw Problem(path, name, $"data_offsets begin {begin} is after end {end}");

        long bytes = ExpectedBytes(shape, dtype.ElementSize(), path, name);
        if (bytes != end - begin)
            throw Problem(path, name, $"shape {SafetensorsTensorInfo.FormatShape(shape)} of {dtype} needs {bytes} bytes but data_offsets [{begin}, {end}] hold {end - begin}");

        return new SafetensorsTensorInfo(name, dtype, shape, begin, end - begin);
    }

    private static long ReadOffset(JsonElement element, string path, string name, string which)
    {
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out long value) || value < 0)
            throw Problem(path, name, $"data_offsets {which} is not a non-negative 64-bit integer");
        return value;
    }

    /// <summary>Element count × element size, refusing overflow instead of wrapping into a plausible number.</summary>
    private static long ExpectedBytes(int[] shape, int elementSize, string path, string name)
    {
        if (shape.Contains(0)) return 0;
        long count = elementSize;
        foreach (int d in shape)
        {
            if (count > long.MaxValue / d)
                throw Problem(path, name, $"shape {SafetensorsTensorInfo.FormatShape(shape)} overflows a 64-bit byte count");
            count *= d;
        }
        return count;
    }

    /// <summary>The data section must be covered exactly once, from 0 to its end, with no gap or overlap.</summary>
    private static void CheckTiling(List<SafetensorsTensorInfo> tensors, long dataLength, string path)
    {
        var ordered = tensors.OrderBy(t => t.DataOffset).ThenBy(t => t.ByteLength).ToList();
        long expected = 0;
        foreach (var t in ordered)
        {
            long end = t.DataOffset + t.ByteLength;
            if (end > dataLength)
                throw Problem(path, t.Name, $"data_offsets end {end} is past the data section ({dataLength} bytes)");
            if (t.DataOffset < expected)
                throw Problem(path, t.Name, $"data_offsets [{t.DataOffset}, {end}] overlap the previous tensor, which ends at {expected}");
            if (t.DataOffset > expected)
                throw Problem(path, t.Name, $"data_offsets begin {t.DataOffset} leaves a gap after byte {expected}");
            expected = end;
        }
        if (expected != dataLength)
            throw new SafetensorsFormatException(path, $"the tensors cover {expected} bytes but the data section holds {dataLength} (trailing bytes)");
    }

    private static SafetensorsFormatException Problem(string path, string name, string problem) =>
        new(path, $"tensor '{Truncate(name)}': {problem}");

    /// <summary>Names come from the file; a hostile 100 MB name must not become a 100 MB message.</summary>
    internal static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";
}
