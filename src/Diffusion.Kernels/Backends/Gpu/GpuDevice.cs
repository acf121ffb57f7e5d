using System.Runtime.InteropServices;
using System.Runtime.Loader;
using Diffusion.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// An ILGPU context, one accelerator and the stream every op of the backend runs on. Two kinds: an NVIDIA GPU
/// through ILGPU's CUDA accelerator (ILGPU writes PTX and hands it to the driver, so only the driver is needed), or
/// ILGPU's CPU accelerator emulating an NVIDIA GPU (warp size 32), which runs each kernel's C# body as .NET code
/// with one OS thread per GPU thread: exact semantics, thousands of times slower than a GPU.
/// The stream is created here, not ILGPU's default one: on CUDA that is the legacy NULL stream, which cannot be
/// captured into a CUDA graph.
/// </summary>
internal sealed class GpuDevice : IDisposable
{
    private static int _resolverRegistered;

    private GpuDevice(Context context, Accelerator accelerator, bool isCuda, string description)
    {
        Context = context;
        Accelerator = accelerator;
        IsCuda = isCuda;
        Description = description;
        Stream = accelerator.CreateStream();
    }

    public Context Context { get; }

    public Accelerator Accelerator { get; }

    public AcceleratorStream Stream { get; }

    public bool IsCuda { get; }

    public string Description { get; }

    /// <summary>The raw CUstream handle of <see cref="Stream"/>, for the graph calls ILGPU does not wrap.</summary>
    public IntPtr CudaStreamHandle => ((CudaStream)Stream).StreamPtr;

    /// <summary>Opens NVIDIA GPU <paramref name="ordinal"/>; false with a reason a person can act on.</summary>
    public static bool TryOpenCuda(int ordinal, out GpuDevice? device, out string reason)
    {
        device = null;
        RegisterDriverResolver();
        if (!NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", out _) &&
            !NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so", out _))
        {
            reason = "the NVIDIA driver library (libcuda.so.1) could not be loaded: no NVIDIA driver is installed";
            return false;
        }
        Context? context = null;
        try
        {
            context = Context.Create(b => KernelContext.Configure(b.Cuda()));
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
            {
                reason = "the NVIDIA driver is installed but reports no usable GPU";
                context.Dispose();
                return false;
            }
            if (ordinal < 0 || ordinal >= devices.Count)
            {
                reason = $"GPU {ordinal} was asked for; this machine has {devices.Count}";
                context.Dispose();
                return false;
            }
            var accelerator = context.CreateCudaAccelerator(ordinal);
            string description = $"{accelerator.Name} ({accelerator.Architecture}), " +
                $"{accelerator.NumMultiprocessors} SMs, {GpuFormat.Bytes(accelerator.MemorySize)}, driver {accelerator.DriverVersion}, ILGPU";
            device = new GpuDevice(context, accelerator, isCuda: true, description);
            reason = "";
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            context?.Dispose();
            reason = "the CUDA driver could not be initialised: " + e.Message;
            return false;
        }
    }

    /// <summary>ILGPU's CPU accelerator shaped like an NVIDIA GPU, kernels run in parallel over the host's cores.</summary>
    public static GpuDevice OpenEmulated()
    {
        var context = Context.Create(b => KernelContext.Configure(b.CPU(CPUDevice.Nvidia)));
        try
        {
            var accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
            string description = $"emulated GPU: ILGPU CPU accelerator (warp {accelerator.WarpSize}, {Environment.ProcessorCount} host threads) " +
                "running the GPU kernels as .NET code; exact, but thousands of times slower than a GPU";
            return new GpuDevice(context, accelerator, isCuda: false, description);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    public void Synchronize() => Stream.Synchronize();

    /// <summary>Makes this device's CUDA context current on the calling thread, before a driver call of our own.</summary>
    public void MakeCurrent() => Accelerator.Bind();

    public void Dispose()
    {
        Stream.Dispose();
        Accelerator.Dispose();
        Context.Dispose();
    }

    /// <summary>
    /// ILGPU imports the driver as "cuda", which the loader resolves to libcuda.so, a name only the CUDA toolkit's
    /// development package installs; the driver itself installs libcuda.so.1. Resolving the fallback from the
    /// default load context's event leaves any resolver ILGPU registers itself (WSL) untouched.
    /// </summary>
    private static void RegisterDriverResolver()
    {
        if (Interlocked.Exchange(ref _resolverRegistered, 1) == 1) return;
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
            name == "cuda" && !OperatingSystem.IsWindows() && NativeLibrary.TryLoad("libcuda.so.1", out IntPtr handle) ? handle : IntPtr.Zero;
    }
}
