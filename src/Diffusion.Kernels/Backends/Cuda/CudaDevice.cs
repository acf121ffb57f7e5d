using System.Text;
using Diffusion.Kernels.Backends.Cuda.Interop;
using static Diffusion.Kernels.Backends.Cuda.CudaErrors;

namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// One GPU as the backend uses it: the device's primary context (shared with any other CUDA user in the process),
/// one stream every op is issued on, and the properties launch shapes are derived from.
/// </summary>
internal sealed unsafe class CudaDevice : IDisposable
{
    private readonly int _device;
    private IntPtr _context;
    private IntPtr _stream;

    private CudaDevice(int device, IntPtr context, IntPtr stream, DeviceProperties properties)
    {
        _device = device;
        _context = context;
        _stream = stream;
        Properties = properties;
    }

    public DeviceProperties Properties { get; }

    public IntPtr Stream => _stream;

    /// <summary>Opens device <paramref name="ordinal"/>; false with a reason when there is no usable driver or device.</summary>
    public static bool TryOpen(int ordinal, out CudaDevice? device, out string reason)
    {
        device = null;
        if (!NativeLibraries.TryLoadCuda(out reason)) return false;
        int init = CudaDriver.cuInit(0);
        if (init != 0)
        {
            var (name, description) = Describe(init, askDriver: true);
            reason = $"cuInit failed: {name} ({description})";
            return false;
        }
        Check(CudaDriver.cuDeviceGetCount(out int count), "cuDeviceGetCount");
        if (count <= ordinal)
        {
            reason = count == 0 ? "the CUDA driver reports no GPU" : $"GPU {ordinal} requested but only {count} present";
            return false;
        }
        Check(CudaDriver.cuDeviceGet(out int handle, ordinal), "cuDeviceGet");
        var properties = ReadProperties(handle);
        Check(CudaDriver.cuDevicePrimaryCtxRetain(out IntPtr context, handle), "cuDevicePrimaryCtxRetain");
        try
        {
            Check(CudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            const uint NonBlocking = 1; // no implicit synchronisation with the legacy default stream
            Check(CudaDriver.cuStreamCreate(out IntPtr stream, NonBlocking), "cuStreamCreate");
            device = new CudaDevice(handle, context, stream, properties);
            reason = "";
            return true;
        }
        catch
        {
            CudaDriver.cuDevicePrimaryCtxRelease_v2(handle);
            throw;
        }
    }

    /// <summary>Binds the context to the calling thread; CUDA contexts are per thread and callers may hop threads.</summary>
    public void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
        Check(CudaDriver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
    }

    public void Synchronize(string context) => Check(CudaDriver.cuStreamSynchronize(_stream), "cuStreamSynchronize", context);

    public void Dispose()
    {
        if (_context == IntPtr.Zero) return;
        CudaDriver.cuCtxSetCurrent(_context);
        CudaDriver.cuStreamSynchronize(_stream);
        CudaDriver.cuStreamDestroy_v2(_stream);
        CudaDriver.cuDevicePrimaryCtxRelease_v2(_device);
        _stream = IntPtr.Zero;
        _context = IntPtr.Zero;
    }

    private static DeviceProperties ReadProperties(int device)
    {
        var name = new byte[256];
        fixed (byte* p = name) Check(CudaDriver.cuDeviceGetName(p, name.Length, device), "cuDeviceGetName");
        Check(CudaDriver.cuDeviceTotalMem_v2(out nuint total, device), "cuDeviceTotalMem_v2");
        return new DeviceProperties(
            Encoding.UTF8.GetString(name, 0, Math.Max(0, Array.IndexOf(name, (byte)0))),
            Attribute(device, CudaDeviceAttribute.ComputeCapabilityMajor),
            Attribute(device, CudaDeviceAttribute.ComputeCapabilityMinor),
            Attribute(device, CudaDeviceAttribute.MultiprocessorCount),
            Attribute(device, CudaDeviceAttribute.MaxThreadsPerBlock),
            Attribute(device, CudaDeviceAttribute.MaxThreadsPerMultiprocessor),
            Attribute(device, CudaDeviceAttribute.MaxSharedMemoryPerBlock),
            Attribute(device, CudaDeviceAttribute.MaxSharedMemoryPerBlockOptin),
            Attribute(device, CudaDeviceAttribute.WarpSize),
            (long)total)
        {
            ClockKHz = OptionalAttribute(device, CudaDeviceAttribute.ClockRate),
            MemoryClockKHz = OptionalAttribute(device, CudaDeviceAttribute.MemoryClockRate),
            MemoryBusWidthBits = OptionalAttribute(device, CudaDeviceAttribute.GlobalMemoryBusWidth),
        };
    }

    /// <summary>Attributes only benchmarks use (clocks are deprecated in newer CUDA): 0 rather than a failure.</summary>
    private static int OptionalAttribute(int device, CudaDeviceAttribute attribute) =>
        CudaDriver.cuDeviceGetAttribute(out int value, attribute, device) == 0 ? value : 0;

    private static int Attribute(int device, CudaDeviceAttribute attribute)
    {
        Check(CudaDriver.cuDeviceGetAttribute(out int value, attribute, device), "cuDeviceGetAttribute", attribute.ToString());
        return value;
    }
}
