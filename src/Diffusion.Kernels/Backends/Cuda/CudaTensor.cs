namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// A block of device memory from the backend's pool. Disposing it (or, as a last resort, finalising it) returns
/// the block to the pool, never to the driver, so a generation loop reuses the same memory step after step.
/// </summary>
internal sealed class DeviceBuffer : IDisposable
{
    private readonly DeviceMemoryPool _pool;
    private readonly long _size;
    private ulong _pointer;

    public DeviceBuffer(DeviceMemoryPool pool, long bytes)
    {
        _pool = pool;
        _pointer = pool.Rent(bytes, out _size);
        Bytes = bytes;
    }

    ~DeviceBuffer() => Release();

    public long Bytes { get; }

    public ulong Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == 0, this);
            return _pointer;
        }
    }

    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    private void Release()
    {
        ulong pointer = Interlocked.Exchange(ref _pointer, 0);
        if (pointer != 0) _pool.Return(pointer, _size);
    }
}

/// <summary>A float32 tensor in device memory.</summary>
internal sealed class CudaTensor : DeviceTensor
{
    private readonly DeviceBuffer _buffer;

    public CudaTensor(CudaBackend owner, DeviceMemoryPool pool, int[] shape) : base(owner, shape)
    {
        if (Length > int.MaxValue)
            throw new DiffusionException($"a tensor of shape ({string.Join(", ", shape)}) has {Length} values; the CUDA kernels index at most {int.MaxValue}");
        _buffer = new DeviceBuffer(pool, Math.Max(1, Length) * sizeof(float));
    }

    public ulong Pointer => _buffer.Pointer;

    public int Count => (int)Length;

    protected override void Dispose(bool disposing)
    {
        if (disposing) _buffer.Dispose();
    }
}

/// <summary>
/// Convolution weights as kernels/conv2d.cu reads them, and the bias: float32 transposed to (Cin·K·K, Cout) for
/// versions 1 and 2; for version 3 fp16 rows (Cout, <see cref="PaddedDepth"/>), the reduction zero-padded to a
/// multiple of 32 so the kernel loads whole 16-byte chunks without bounds checks.
/// </summary>
internal sealed class CudaConv2dWeights(Conv2dSpec spec, DeviceBuffer weight, DeviceBuffer bias, bool half, int paddedDepth) : Conv2dWeights(spec)
{
    public ulong Weight => weight.Pointer;

    public ulong Bias => bias.Pointer;

    public bool IsHalf { get; } = half;

    public int PaddedDepth { get; } = paddedDepth;

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        weight.Dispose();
        bias.Dispose();
    }
}

/// <summary>Fully connected weights in PyTorch's (out, in) layout, which kernels/linear.cu reads row by row.</summary>
internal sealed class CudaLinearWeights(int inFeatures, int outFeatures, DeviceBuffer weight, DeviceBuffer bias)
    : LinearWeights(inFeatures, outFeatures)
{
    public ulong Weight => weight.Pointer;

    public ulong Bias => bias.Pointer;

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        weight.Dispose();
        bias.Dispose();
    }
}
