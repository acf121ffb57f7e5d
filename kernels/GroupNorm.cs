// GroupNorm — the GPU twin of CpuBackend.GroupNorm.
//
// For each image n and group g of C/G consecutive channels, over all (c, h, w) of the group:
//   mean = Σ x / count,  var = Σ (x − mean)² / count   (biased, as PyTorch)
//   y = (x − mean) / sqrt(var + eps) · gamma[c] + beta[c],  then y = y·σ(y) when Silu is set.
// The variance is a second pass over (x − mean) rather than E[x²] − mean², which cancels catastrophically when
// the mean is large next to the spread. y may alias x: every element is read for both statistics before the
// thread that owns its group writes it.
//
// Versions (DIFFUSION_KERNEL_VERSION_group_norm=N):
//   1  Version1: one thread per (n, group) runs the three passes serially, the CPU code on one core (the mean's sum
//      in float64). Its output is the group; a thread per output value would recompute the statistics count times.
//   2  Version2 (default): one block of 256 threads per (n, group). The group's elements are contiguous in NCHW,
//      so the threads stride over them with coalesced reads; each pass's partial sums are combined with warp
//      shuffles and one shared slot per warp (WarpReductions.BlockSum). The group stays in L1/L2 between the
//      passes, so the three cost little more than one trip to memory. SiLU is fused into the store.

using ILGPU;
using ILGPU.Runtime;

namespace Diffusion.Kernels.Gpu;

public struct GroupNormParams
{
    public int Batch, Channels, Pixels, Groups;
    public float Eps;
    public int Silu;

    public readonly int GroupCount => Batch * Groups;
}

public static class GroupNorm
{
    public static void Version1(Index1D index, GroupNormParams p, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta,
        ArrayView<float> y)
    {
        int n = index / p.Groups;
        int g = index % p.Groups;
        int perGroup = p.Channels / p.Groups;
        int count = perGroup * p.Pixels;
        long start = ((long)n * p.Channels + (long)g * perGroup) * p.Pixels;

        // The mean's sum runs in float64: one thread adds thousands of values serially, and a float32 running sum of
        // values far from zero (|mean| ≫ spread) loses the digits the variance pass needs.
        double sum = 0;
        for (int i = 0; i < count; i++) sum += x[start + i];
        float mean = (float)(sum / count);
        float squares = 0f;
        for (int i = 0; i < count; i++)
        {
            float d = x[start + i] - mean;
            squares += d * d;
        }
        float invStd = 1f / MathF.Sqrt(squares / count + p.Eps);
        for (int i = 0; i < count; i++)
        {
            int c = g * perGroup + i / p.Pixels;
            float v = (x[start + i] - mean) * invStd * gamma[c] + beta[c];
            y[start + i] = p.Silu != 0 ? Elementwise.SiLUValue(v) : v;
        }
    }

    /// <summary>Threads per block of version 2 (one block per (image, group)).</summary>
    public const int Threads = 256;

    public static KernelConfig Version2Launch(in GroupNormParams p) => new(p.GroupCount, Threads);

    public static void Version2(GroupNormParams p, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y)
    {
        var scratch = SharedMemory.Allocate<float>(Warp.WarpSize);
        int n = Grid.IdxX / p.Groups;
        int g = Grid.IdxX % p.Groups;
        int perGroup = p.Channels / p.Groups;
        int count = perGroup * p.Pixels;
        long start = ((long)n * p.Channels + (long)g * perGroup) * p.Pixels;
        int tid = Group.IdxX, threads = Group.DimX;

        float partial = 0f;
        for (int i = tid; i < count; i += threads) partial += x[start + i];
        float mean = WarpReductions.BlockSum(partial, scratch) / count;
        partial = 0f;
        for (int i = tid; i < count; i += threads)
        {
            float d = x[start + i] - mean;
            partial += d * d;
        }
        float invStd = 1f / MathF.Sqrt(WarpReductions.BlockSum(partial, scratch) / count + p.Eps);
        for (int i = tid; i < count; i += threads)
        {
            int c = g * perGroup + i / p.Pixels;
            float v = (x[start + i] - mean) * invStd * gamma[c] + beta[c];
            y[start + i] = p.Silu != 0 ? Elementwise.SiLUValue(v) : v;
        }
    }
}
