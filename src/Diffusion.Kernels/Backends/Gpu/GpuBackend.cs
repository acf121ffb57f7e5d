using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// The ops of <see cref="IBackend"/> as the ILGPU kernels of kernels/*.cs, on one ILGPU accelerator: an NVIDIA GPU
/// ("cuda", needs only the driver) or ILGPU's CPU accelerator ("emulated": the same kernels run as .NET code, slow,
/// for tests and teaching). Ops run in order on one stream the backend creates; <see cref="Download"/> and
/// <see cref="Synchronize"/> wait for them. Shapes are checked by <see cref="OpContract"/>, as on the CPU.
/// <see cref="Versions"/> says which kernel version each op launches; <see cref="CaptureGraph"/> records a sampler
/// step for replay. One backend instance must be driven from one thread at a time.
/// </summary>
public sealed partial class GpuBackend : IBackend
{
    private readonly GpuDevice _device;
    private readonly DeviceMemoryPool<MemoryBuffer1D<float, Stride1D.Dense>> _pool;
    private readonly GpuKernels _kernels;
    private readonly GpuTensor _placeholder;
    private bool _disposed;

    private GpuBackend(GpuDevice device, KernelVersions versions)
    {
        versions.Validate();
        _device = device;
        Versions = versions;
        var accelerator = device.Accelerator;
        _pool = new DeviceMemoryPool<MemoryBuffer1D<float, Stride1D.Dense>>(
            bytes => accelerator.Allocate1D<float>(bytes / sizeof(float)), buffer => buffer.Dispose(), IsOutOfMemory);
        _kernels = new GpuKernels(accelerator);
        _placeholder = (GpuTensor)Allocate(1);
    }

    /// <summary>"cuda" or "emulated".</summary>
    public string Name => _device.IsCuda ? "cuda" : "emulated";

    public string DeviceDescription => _device.Description + $"; kernels: {Versions}";

    /// <summary>True on ILGPU's CPU accelerator.</summary>
    public bool IsEmulated => !_device.IsCuda;

    /// <summary>The kernel versions this backend launches.</summary>
    public KernelVersions Versions { get; }

    /// <summary>Bytes of device memory held by live tensors and weights.</summary>
    public long BytesInUse => _pool.BytesInUse;

    /// <summary>
    /// Live device blocks held by tensors and weights, not counting the backend's own: the placeholder, the
    /// timestep and coefficient tensors and the frequency tables, which live as long as the backend.
    /// </summary>
    public int BlocksInUse => _pool.BlocksInUse - 1 - _frequencies.Count - (_timestepSlot == null ? 0 : 1) - (_coefficientSlot == null ? 0 : 1);

    /// <summary>Times the device was asked for memory; the pool makes repeated forwards add none.</summary>
    public int DriverAllocations => _pool.DriverAllocations;

    /// <summary>
    /// On a GPU: free device memory as the driver reports it (other processes' use included) plus what the pool caches,
    /// which it hands back before failing an allocation. On the emulated device: what the managed heap may grow into.
    /// </summary>
    public long AvailableMemoryBytes => _device.IsCuda
        ? CudaFreeBytes() + _pool.BytesCached
        : Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - GC.GetGCMemoryInfo().HeapSizeBytes);

    /// <summary>ILGPU's CPU accelerator shaped like an NVIDIA GPU; <paramref name="versions"/> defaults to the environment's choice.</summary>
    public static GpuBackend CreateEmulated(KernelVersions? versions = null)
    {
        var chosen = versions ?? KernelVersions.FromEnvironment();
        chosen.Validate();
        var device = GpuDevice.OpenEmulated();
        try
        {
            return new GpuBackend(device, chosen);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens NVIDIA GPU <paramref name="ordinal"/>. False, with a reason a person can act on, when the machine has no
    /// NVIDIA driver or no such GPU. Bad versions throw a <see cref="DiffusionException"/> rather than falling back.
    /// </summary>
    public static bool TryCreateCuda(out GpuBackend? backend, out string reason, int ordinal = 0, KernelVersions? versions = null)
    {
        backend = null;
        var chosen = versions ?? KernelVersions.FromEnvironment();
        chosen.Validate();
        if (!GpuDevice.TryOpenCuda(ordinal, out var device, out reason)) return false;
        try
        {
            backend = new GpuBackend(device!, chosen);
            return true;
        }
        catch
        {
            device!.Dispose();
            throw;
        }
    }

    public DeviceTensor Allocate(params int[] shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(shape);
        if (_device.IsCuda) _device.MakeCurrent();
        long count = HostTensor.Count(shape);
        // Kernels index with int (Index1D), so one tensor holds fewer than 2^31 values.
        if (count > int.MaxValue)
            throw new BackendArgumentException($"shape ({string.Join(", ", shape)}) holds {count} values, more than one GPU tensor can (2^31 − 1)");
        try
        {
            return new GpuTensor(this, _pool, shape);
        }
        catch (Exception e) when (IsDeviceFailure(e))
        {
            throw new GpuDeviceException($"the GPU could not allocate {GpuFormat.Bytes(count * sizeof(float))} for a tensor of shape " +
                $"({string.Join(", ", shape)}): {e.Message}", e, IsOutOfMemory(e));
        }
    }

    /// <summary>Theoretical peaks of the GPU for benchmarks' "% of peak"; null on the emulated device.</summary>
    public DevicePeak? Peak => _device.Accelerator is ILGPU.Runtime.Cuda.CudaAccelerator cuda && cuda.Architecture is { } arch
        ? DevicePeak.For(arch.Major * 10 + arch.Minor, cuda.NumMultiprocessors, cuda.ClockRate, cuda.MemoryClockRate, cuda.MemoryBusWidth)
        : null;

    /// <summary>
    /// Milliseconds the device spent on the work <paramref name="issue"/> enqueues: CUDA events around it on the
    /// stream on a GPU (host launch overhead that overlaps GPU work is not counted), the wall clock to completion
    /// on the emulated device. For benchmarks.
    /// </summary>
    public double TimeMilliseconds(Action issue)
    {
        ArgumentNullException.ThrowIfNull(issue);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_device.IsCuda)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            issue();
            Synchronize();
            return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        _device.MakeCurrent();
        return CudaGraphDriver.Time(_device.CudaStreamHandle, issue);
    }

    private long CudaFreeBytes()
    {
        _device.MakeCurrent();
        return CudaGraphDriver.FreeBytes();
    }

    public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape)
    {
        var tensor = (GpuTensor)Allocate(shape);
        if (data.Length != tensor.Length)
        {
            tensor.Dispose();
            throw new BackendArgumentException($"{data.Length} values do not fill shape ({string.Join(", ", shape)})");
        }
        CopyIn(tensor, data);
        return tensor;
    }

    public void Download(DeviceTensor source, Span<float> destination)
    {
        var src = Mine(source, nameof(source));
        if (destination.Length != src.Length)
            throw new BackendArgumentException($"destination holds {destination.Length} values, {source} holds {src.Length}");
        if (destination.IsEmpty) return;
        try
        {
            src.View.SubView(0, src.Length).CopyToCPU(_device.Stream, ref MemoryMarshal.GetReference(destination), src.Length);
            _device.Synchronize();
        }
        catch (Exception e) when (IsDeviceFailure(e))
        {
            throw new GpuDeviceException($"the GPU failed while downloading {source} (or an earlier kernel failed): {e.Message}", e, IsOutOfMemory(e));
        }
    }

    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Run("waiting for the kernels issued so far", _device.Synchronize);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _device.Synchronize();
        }
        finally
        {
            foreach (var table in _frequencies.Values) table.Dispose();
            _timestepSlot?.Dispose();
            _coefficientSlot?.Dispose();
            _placeholder.Dispose();
            _pool.Dispose();
            _device.Dispose();
        }
    }

    private void CopyIn(GpuTensor tensor, ReadOnlySpan<float> data)
    {
        if (data.IsEmpty) return;
        // From pageable memory the copy returns once the driver has staged the data, so the span may be reused.
        var view = tensor.View.SubView(0, data.Length);
        ref float first = ref MemoryMarshal.GetReference(data);
        view.CopyFromCPU(_device.Stream, ref first, data.Length);
    }

    /// <summary>
    /// Ownership check at the start of every op, which also makes the CUDA context current: the backend may be
    /// driven from a thread other than the one that created it (one thread at a time).
    /// </summary>
    private GpuTensor Mine(DeviceTensor? tensor, string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_device.IsCuda) _device.MakeCurrent();
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not GpuTensor gpu || !ReferenceEquals(tensor.Owner, this))
            throw new BackendArgumentException($"{name} ({tensor}) was not allocated by this {Name} backend");
        return gpu;
    }

    /// <summary>Device failures (an ILGPU or driver exception) become one <see cref="GpuDeviceException"/> naming the work.</summary>
    private static void Run(string what, Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (IsDeviceFailure(e))
        {
            throw new GpuDeviceException($"the GPU failed while {what}: {e.Message}", e, IsOutOfMemory(e));
        }
    }

    private static bool IsDeviceFailure(Exception e) =>
        e is not DiffusionException and not OutOfMemoryException and not ArgumentException and not ObjectDisposedException;

    private static bool IsOutOfMemory(Exception e) =>
        e is OutOfMemoryException || e.Message.Contains("OUT_OF_MEMORY", StringComparison.Ordinal);
}
