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
        choice = "none";
        throw new NotSupportedException("no backend has been built yet");
    }
}
