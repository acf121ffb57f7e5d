using System.Buffers.Binary;
using System.Text;

namespace Diffusion.Kernels.Tests.IO;

/// <summary>Builds safetensors files byte by byte, independently of the writer under test.</summary>
internal static class SafetensorsBytes
{
    /// <summary>8-byte little-endian length, the header text as given (no padding), then the data.</summary>
    public static byte[] Build(string header, byte[]? data = null) => Build(Encoding.UTF8.GetBytes(header), data ?? []);

    public static byte[] Build(byte[] header, byte[] data)
    {
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.CopyTo(file, 8 + header.Length);
        return file;
    }

    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }
}
