namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// Theoretical peaks of a device, for "% of peak" columns in benchmarks. Null where the architecture's per-SM rate
/// is not in the table below or the driver did not report a clock. These are datasheet-style numbers at the peak
/// (boost) clock the driver reports; a sustained clock under load is often lower, so 100% is not reachable.
/// </summary>
public sealed record DevicePeak(double? Float32Flops, double? Float16TensorFlops, double? BytesPerSecond)
{
    /// <param name="architecture">compute capability as 10·major + minor (8.0 → 80)</param>
    public static DevicePeak For(int architecture, int multiprocessors, int clockKHz, int memoryClockKHz, int memoryBusWidthBits)
    {
        double clock = clockKHz * 1e3;
        double sms = multiprocessors;
        // FP32 lanes per SM: 64 on Volta/Turing/A100, 128 on GA10x, Ada, Hopper and Blackwell.
        int? fp32Lanes = architecture switch
        {
            70 or 72 or 75 or 80 => 64,
            86 or 87 or 89 or 90 or 100 or 120 => 128,
            _ => null,
        };
        // Dense fp16 multiply-adds per SM per clock with fp32 accumulation, as the datasheets count them
        // (A100: 1024, H100: 2048 — though mma.sync reaches only part of Hopper's, which wgmma is needed for).
        int? tensorFma = architecture switch
        {
            80 => 1024,
            90 => 2048,
            _ => null,
        };
        double? fp32 = fp32Lanes is int lanes && clock > 0 ? 2.0 * lanes * sms * clock : null;
        double? fp16 = tensorFma is int fma && clock > 0 ? 2.0 * fma * sms * clock : null;
        // Double data rate: two transfers per memory clock across the bus.
        double? bandwidth = memoryClockKHz > 0 && memoryBusWidthBits > 0
            ? 2.0 * memoryClockKHz * 1e3 * memoryBusWidthBits / 8
            : null;
        return new DevicePeak(fp32, fp16, bandwidth);
    }
}
