using ILGPU;
using ILGPU.Runtime;

namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>A float32 tensor in device memory rented from the backend's pool; View covers exactly its values.</summary>
internal sealed class GpuTensor : DeviceTensor
{
    private readonly DeviceMemoryPool<MemoryBuffer1D<float, Stride1D.Dense>> _pool;
    private MemoryBuffer1D<float, Stride1D.Dense>? _buffer;
    private readonly long _size;

    public GpuTensor(GpuBackend owner, DeviceMemoryPool<MemoryBuffer1D<float, Stride1D.Dense>> pool, int[] shape) : base(owner, shape)
    {
        _pool = pool;
        _buffer = pool.Rent(Math.Max(1, Length) * sizeof(float), out _size);
    }

    public ArrayView<float> View
    {
        get
        {
            ObjectDisposedException.ThrowIf(_buffer == null, this);
            return _buffer.View.SubView(0, Math.Max(1, Length)).AsContiguous();
        }
    }

    /// <summary>True when both tensors are views of the same device block.</summary>
    public bool SameMemory(GpuTensor other) => ReferenceEquals(_buffer, other._buffer);

    protected override void Dispose(bool disposing)
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer != null) _pool.Return(buffer, _size);
    }
}

internal sealed class GpuConv2dWeights(Conv2dSpec spec, GpuTensor weight, GpuTensor bias, GpuTensor? halfWeight = null) : Conv2dWeights(spec)
{
    /// <summary>(Cout, Cin·K·K), PyTorch's layout.</summary>
    public GpuTensor Weight { get; } = weight;

    public GpuTensor Bias { get; } = bias;

    /// <summary>Version 3's half-precision weights (Conv2d.Version3Weights), two halves in each float's bits; null for other versions.</summary>
    public GpuTensor? HalfWeight { get; } = halfWeight;

    protected override void Dispose(bool disposing)
    {
        Weight.Dispose();
        Bias.Dispose();
        HalfWeight?.Dispose();
    }
}

internal sealed class GpuLinearWeights(int inFeatures, int outFeatures, GpuTensor weight, GpuTensor bias) : LinearWeights(inFeatures, outFeatures)
{
    /// <summary>(out, in), PyTorch's layout.</summary>
    public GpuTensor Weight { get; } = weight;

    public GpuTensor Bias { get; } = bias;

    protected override void Dispose(bool disposing)
    {
        Weight.Dispose();
        Bias.Dispose();
    }
}
