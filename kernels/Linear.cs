// Linear — the GPU twin of CpuBackend.Linear.
//
// y[r, o] = b[o] + Σ_i W[o, i] · act(x[r, i]) with act = SiLU when SiluInput is set (the time-embedding MLP and
// each resnet's time projection take SiLU of their input). W is PyTorch's (out, in) layout, row-major. The U-Net
// calls it with a handful of rows (the batch): a matrix-vector product limited by reading W once.
//
// Versions (DIFFUSION_KERNEL_VERSION_linear=N):
//   1  Version1: one thread per output (r, o) walks W's row o alone. Neighbouring threads read addresses In
//      floats apart, so every load is its own memory transaction.
//   2  Version2 (default): one warp per output. The 32 lanes read 32 consecutive weights per step (one coalesced
//      transaction), accumulate privately, and finish with a butterfly shuffle sum (WarpReductions.Sum).

using ILGPU;
using ILGPU.Runtime;

namespace Diffusion.Kernels.Gpu;

public struct LinearParams
{
    public int Rows, In, Out, SiluInput;

    public readonly int OutputCount => Rows * Out;
}

public static class Linear
{
    public static void Version1(Index1D index, LinearParams p, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> y)
    {
        int r = index / p.Out;
        int o = index % p.Out;
        float acc = 0f;
        for (int i = 0; i < p.In; i++)
        {
            float v = x[(long)r * p.In + i];
            acc += weight[(long)o * p.In + i] * (p.SiluInput != 0 ? Elementwise.SiLUValue(v) : v);
        }
        y[index] = acc + bias[o];
    }

    /// <summary>Threads per block of version 2: 8 warps, one output each.</summary>
    public const int Threads = 256;

    public static KernelConfig Version2Launch(in LinearParams p) =>
        new((int)(((long)p.OutputCount * 32 + Threads - 1) / Threads), Threads);

    public static void Version2(LinearParams p, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y)
    {
        int lane = Warp.LaneIdx;
        int index = (Grid.IdxX * Group.DimX + Group.IdxX) / Warp.WarpSize; // one warp per output
        if (index >= p.OutputCount) return; // whole warps leave together
        int r = index / p.Out;
        int o = index % p.Out;
        long xr = (long)r * p.In, wo = (long)o * p.In;
        float acc = 0f;
        for (int i = lane; i < p.In; i += Warp.WarpSize)
        {
            float v = x[xr + i];
            acc += weight[wo + i] * (p.SiluInput != 0 ? Elementwise.SiLUValue(v) : v);
        }
        acc = WarpReductions.Sum(acc);
        if (lane == 0) y[index] = acc + bias[o];
    }
}
