namespace Diffusion.Kernels.IO;

/// <summary>
/// One tensor's entry in a safetensors header. <see cref="DataOffset"/> is relative to the start of the data
/// section (the byte after the header), as in the file.
/// </summary>
public sealed record SafetensorsTensorInfo(string Name, SafetensorsDType DType, int[] Shape, long DataOffset, long ByteLength)
{
    public long ElementCount => ByteLength / DType.ElementSize();

    public string ShapeText => FormatShape(Shape);

    internal static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";
}
