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
    /// <summary>Peak SM clock in kHz; 0 when the driver does not report it.</summary>
    public int ClockKHz { get; init; }

    /// <summary>Peak memory clock in kHz; 0 when unknown.</summary>
    public int MemoryClockKHz { get; init; }

    /// <summary>Memory bus width in bits; 0 when unknown.</summary>
    public int MemoryBusWidthBits { get; init; }

    /// <summary>Compute capability as NVRTC numbers it: 8.0 → 80, 9.0 → 90.</summary>
    public int Architecture => ComputeMajor * 10 + ComputeMinor;

    public override string ToString() =>
        $"{Name} (compute {ComputeMajor}.{ComputeMinor}, {MultiprocessorCount} SMs, {TotalMemory / (double)(1L << 30):0.0} GB)";
}

/// <summary>
/// Theoretical peaks of a device, for "% of peak" columns in benchmarks. Null where the architecture's per-SM rate
/// is not in the table below or the driver did not report a clock. These are datasheet-style numbers at the peak
/// (boost) clock the driver reports; a sustained clock under load is often lower, so 100% is not reachable.
/// </summary>
public sealed record DevicePeak(double? Float32Flops, double? Float16TensorFlops, double? BytesPerSecond)
{
    internal static DevicePeak For(DeviceProperties device)
    {
        double clock = device.ClockKHz * 1e3;
        double sms = device.MultiprocessorCount;
        // FP32 lanes per SM: 64 on Volta/Turing/A100, 128 on GA10x, Ada, Hopper and Blackwell.
        int? fp32Lanes = device.Architecture switch
        {
            70 or 72 or 75 or 80 => 64,
            86 or 87 or 89 or 90 or 100 or 120 => 128,
            _ => null,
        };
        // Dense fp16 multiply-adds per SM per clock with fp32 accumulation, as the datasheets count them
        // (A100: 1024, H100: 2048 — though mma.sync reaches only part of Hopper's, which wgmma is needed for).
        int? tensorFma = device.Architecture switch
        {
            80 => 1024,
            90 => 2048,
            _ => null,
        };
        double? fp32 = fp32Lanes is int lanes && clock > 0 ? 2.0 * lanes * sms * clock : null;
        double? fp16 = tensorFma is int fma && clock > 0 ? 2.0 * fma * sms * clock : null;
        // Double data rate: two transfers per memory clock across the bus.
        double? bandwidth = device.MemoryClockKHz > 0 && device.MemoryBusWidthBits > 0
            ? 2.0 * device.MemoryClockKHz * 1e3 * device.MemoryBusWidthBits / 8
            : null;
        return new DevicePeak(fp32, fp16, bandwidth);
    }
}
