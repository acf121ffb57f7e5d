using System.Buffers.Binary;
using System.Text.Json;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// Reads the F32/F64/U8 tensors of a golden safetensors file (weights/make_goldens.py writes them) as doubles.
/// Test-side only, so the sampler tests do not depend on the library's own reader.
/// </summary>
internal sealed class GoldenFile
{
    private readonly Dictionary<string, (int[] Shape, double[] Values)> _tensors = [];

    public GoldenFile(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        int dataStart = 8 + (int)headerLength;
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__") continue;
            string dtype = entry.Value.GetProperty("dtype").GetString()!;
            int[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray();
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt32()).ToArray();
            int start = dataStart + offsets[0], length = offsets[1] - offsets[0];
            double[] values = dtype switch
            {
                "F32" => Enumerable.Range(0, length / 4).Select(i => (double)BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(start + 4 * i))).ToArray(),
                "F64" => Enumerable.Range(0, length / 8).Select(i => BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(start + 8 * i))).ToArray(),
                "U8" => Enumerable.Range(0, length).Select(i => (double)bytes[start + i]).ToArray(),
                _ => throw new NotSupportedException($"{path}: {entry.Name} has dtype {dtype}"),
            };
            _tensors[entry.Name] = (shape, values);
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public int[] Shape(string name) => _tensors[name].Shape;

    public double[] Values(string name) => _tensors[name].Values;

    /// <summary>Slice i along the first axis, as float32.</summary>
    public float[] Slice(string name, int i)
    {
        var (shape, values) = _tensors[name];
        int size = values.Length / shape[0];
        return values.Skip(i * size).Take(size).Select(v => (float)v).ToArray();
    }
}
