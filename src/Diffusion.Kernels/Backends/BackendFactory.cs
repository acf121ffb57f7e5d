using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Gpu;

namespace Diffusion.Kernels.Backends;

/// <summary>
/// Which backend a caller asks for; Auto takes CUDA when a device is usable, else the CPU. Emulated runs the GPU
/// kernels on ILGPU's CPU accelerator: the same code as on the GPU, exact, and thousands of times slower; it is
/// never chosen by Auto.
/// </summary>
public enum DeviceKind
{
    Auto,
    Cpu,
    Cuda,
    Emulated,
}

/// <summary>CUDA was asked for explicitly and cannot be used; the message says why (no driver, no GPU).</summary>
public sealed class DeviceUnavailableException(string message) : DiffusionException(message);

public static class BackendFactory
{
    /// <summary>Creates the requested backend; <paramref name="choice"/> says which one was taken and why.</summary>
    public static IBackend Create(DeviceKind kind, out string choice)
    {
        switch (kind)
        {
            case DeviceKind.Cpu:
                return Cpu("requested", out choice);
            case DeviceKind.Cuda:
                if (!GpuBackend.TryCreateCuda(out var cuda, out string reason))
                    throw new DeviceUnavailableException($"CUDA was requested but cannot be used: {reason}");
                choice = $"cuda (requested): {cuda!.DeviceDescription}";
                return cuda;
            case DeviceKind.Emulated:
                var emulated = GpuBackend.CreateEmulated();
                choice = $"emulated (requested): {emulated.DeviceDescription}";
                return emulated;
            case DeviceKind.Auto:
                if (GpuBackend.TryCreateCuda(out var gpu, out string why))
                {
                    choice = $"cuda (auto): {gpu!.DeviceDescription}";
                    return gpu;
                }
                return Cpu($"auto, no CUDA: {why}", out choice);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown device kind");
        }
    }

    private static CpuBackend Cpu(string why, out string choice)
    {
        var cpu = new CpuBackend();
        choice = $"cpu ({why}): {cpu.DeviceDescription}";
        return cpu;
    }
}

/// <summary>
/// An op was called with tensors or weights it cannot use: wrong shapes, another backend's memory, or aliasing
/// the op forbids. Every backend raises it for the same misuse, so callers and tests need not know which ran.
/// </summary>
public sealed class BackendArgumentException(string message) : DiffusionException(message);
