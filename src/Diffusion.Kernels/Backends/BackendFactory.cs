using Diffusion.Kernels.Backends.Cpu;

namespace Diffusion.Kernels.Backends;

/// <summary>Which backend a caller asks for; Auto takes CUDA when a device is usable, else the CPU.</summary>
public enum DeviceKind
{
    Auto,
    Cpu,
    Cuda,
}

public static class BackendFactory
{
    /// <summary>Creates the requested backend; <paramref name="choice"/> says which one was taken and why.</summary>
    public static IBackend Create(DeviceKind kind, out string choice)
    {
        switch (kind)
        {
            case DeviceKind.Cpu:
                choice = "cpu (requested)";
                return new CpuBackend();
            case DeviceKind.Auto:
                // CUDA is tried first here once its backend lands; until then Auto means the CPU.
                choice = "cpu (no CUDA backend in this build)";
                return new CpuBackend();
            case DeviceKind.Cuda:
                choice = "none";
                throw new NotSupportedException("the CUDA backend is not part of this build");
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown device kind");
        }
    }
}
