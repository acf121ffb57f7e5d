namespace Diffusion.Kernels.Backends;

/// <summary>
/// A float32 tensor living wherever its backend keeps data (managed memory for the CPU backend, device memory
/// for CUDA). Row-major; the U-Net uses rank 4 (N, C, H, W) and rank 2 (rows, features). Only the backend that
/// allocated a tensor may read or write it.
/// </summary>
public abstract class DeviceTensor : IDisposable
{
    private readonly int[] _shape;

    protected DeviceTensor(IBackend owner, int[] shape)
    {
        Owner = owner;
        _shape = (int[])shape.Clone();
        Length = HostTensor.Count(shape);
    }

    public IBackend Owner { get; }

    public ReadOnlySpan<int> Shape => _shape;

    public int Rank => _shape.Length;

    public long Length { get; }

    public int N => _shape[0];

    public int C => _shape[1];

    public int H => _shape[2];

    public int W => _shape[3];

    public int[] ShapeArray() => (int[])_shape.Clone();

    public bool SameShape(DeviceTensor other) => _shape.AsSpan().SequenceEqual(other._shape);

    public override string ToString() => $"{Owner.Name} tensor ({string.Join(", ", _shape)})";

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);
}
