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

/// <summary>
/// Which backend <see cref="BackendFactory.Create"/> took and why: <see cref="Summary"/> is a short line for a
/// status display ("cpu, AMD EPYC, 2 threads, AVX-512"); <see cref="ToString"/> adds how it was chosen and every
/// detail of the device (NVRTC version, kernel variants).
/// </summary>
public sealed record BackendChoice(string Name, bool Auto, string? WhyNotCuda, string Summary, string Description)
{
    public override string ToString() =>
        $"{Name} ({(Auto ? "auto" : "requested")}{(WhyNotCuda is null ? "" : $", no CUDA: {WhyNotCuda}")}): {Description}";
}

public static class BackendFactory
{
    /// <summary>Creates the requested backend; <paramref name="choice"/> says which one was taken and why.</summary>
    public static IBackend Create(DeviceKind kind, out BackendChoice choice)
    {
        switch (kind)
        {
            case DeviceKind.Cpu:
                return Cpu(auto: false, whyNotCuda: null, out choice);
            case DeviceKind.Cuda:
                if (!GpuBackend.TryCreateCuda(out var cuda, out string reason))
                    throw new DeviceUnavailableException($"CUDA was requested but cannot be used: {reason}");
                choice = Gpu(cuda!, auto: false);
                return cuda!;
            case DeviceKind.Emulated:
                var emulated = GpuBackend.CreateEmulated();
                choice = Gpu(emulated, auto: false);
                return emulated;
            case DeviceKind.Auto:
                if (GpuBackend.TryCreateCuda(out var gpu, out string why))
                {
                    choice = Gpu(gpu!, auto: true);
                    return gpu!;
                }
                return Cpu(auto: true, whyNotCuda: why, out choice);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown device kind");
        }
    }

    private static BackendChoice Gpu(GpuBackend gpu, bool auto) =>
        new(gpu.Name, auto, null, $"{gpu.Name}, {gpu.DeviceSummary}", gpu.DeviceDescription);

    private static CpuBackend Cpu(bool auto, string? whyNotCuda, out BackendChoice choice)
    {
        var cpu = new CpuBackend();
        choice = new BackendChoice(cpu.Name, auto, whyNotCuda, $"{cpu.Name}, {cpu.DeviceDescription}", cpu.DeviceDescription);
        return cpu;
    }
}

/// <summary>
/// An op was called with tensors or weights it cannot use: wrong shapes, another backend's memory, or aliasing
/// the op forbids. Every backend raises it for the same misuse, so callers and tests need not know which ran.
/// </summary>
public sealed class BackendArgumentException(string message) : DiffusionException(message);
