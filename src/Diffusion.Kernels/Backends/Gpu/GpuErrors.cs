namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>The GPU failed while allocating, copying or running a kernel; the message names what was being done.</summary>
public sealed class GpuDeviceException(string message, Exception? inner = null, bool isOutOfMemory = false) : DiffusionException(message, inner)
{
    /// <summary>True when the device ran out of memory (the CLI's exit code 6 rather than 8).</summary>
    public bool IsOutOfMemory { get; } = isOutOfMemory;
}

/// <summary>Work issued while capturing a CUDA graph did something a graph cannot hold (e.g. needed new device memory).</summary>
public sealed class GraphCaptureException(string message) : DiffusionException(message);

internal static class GpuFormat
{
    internal static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MB",
        >= 1L << 10 => $"{bytes / 1024.0:0.0} KB",
        _ => $"{bytes} bytes",
    };
}
