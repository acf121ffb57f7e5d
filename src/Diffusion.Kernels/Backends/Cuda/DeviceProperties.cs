namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>What the launch code needs to know about a GPU, read once from the driver.</summary>
internal sealed record DeviceProperties(
    string Name,
    int ComputeMajor,
    int ComputeMinor,
    int MultiprocessorCount,
    int MaxThreadsPerBlock,
    int MaxThreadsPerMultiprocessor,
    int SharedMemoryPerBlock,
    int SharedMemoryPerBlockOptin,
    int WarpSize,
    long TotalMemory)
{
    /// <summary>Compute capability as NVRTC numbers it: 8.0 → 80, 9.0 → 90.</summary>
    public int Architecture => ComputeMajor * 10 + ComputeMinor;

    public override string ToString() =>
        $"{Name} (compute {ComputeMajor}.{ComputeMinor}, {MultiprocessorCount} SMs, {TotalMemory / (double)(1L << 30):0.0} GB)";
}
