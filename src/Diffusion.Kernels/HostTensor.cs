namespace Diffusion.Kernels;

/// <summary>A float32 tensor in ordinary managed memory, row-major, with its shape.</summary>
public sealed class HostTensor
{
    public HostTensor(int[] shape, float[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long count = Count(shape);
        if (count != data.Length)
            throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds {count} values but data has {data.Length}");
        Shape = (int[])shape.Clone();
        Data = data;
    }

    public HostTensor(params int[] shape) : this(shape, new float[checked((int)Count(shape))]) { }

    public int[] Shape { get; }

    public float[] Data { get; }

    public int Rank => Shape.Length;

    public static long Count(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException("negative dimension in shape");
            count = checked(count * d);
        }
        return count;
    }

    public override string ToString() => $"HostTensor({string.Join(", ", Shape)})";
}
