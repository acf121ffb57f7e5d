using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// A tensor of the CPU backend: a pinned float array borrowed from the backend's pool, so kernels can use raw
/// pointers without fixing and a repeated forward pass reuses the same arrays. Dispose hands the array back.
/// </summary>
internal sealed unsafe class CpuTensor : DeviceTensor
{
    private readonly TensorPool _pool;
    private float[]? _data;

    internal CpuTensor(CpuBackend owner, TensorPool pool, int[] shape) : base(owner, shape)
    {
        _pool = pool;
        _data = pool.Rent(checked((int)Length));
    }

    internal float[] Data => _data ?? throw new ObjectDisposedException(ToString());

    internal Span<float> Span => Data.AsSpan();

    /// <summary>Stable for the tensor's lifetime: pool arrays live on the pinned object heap.</summary>
    internal float* Pointer => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(Data));

    protected override void Dispose(bool disposing)
    {
        float[]? data = Interlocked.Exchange(ref _data, null);
        if (data != null) _pool.Return(data);
    }
}
