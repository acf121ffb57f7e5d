// WarpReductions — sums and maxima across a warp and a block, shared by the kernels that reduce (GroupNorm,
// Linear and Attention version 2). Butterfly shuffles leave the result in every lane, so no lane has to broadcast it.

using ILGPU;

namespace Diffusion.Kernels.Gpu;

/// <summary>Sums and maxima across a warp (butterfly shuffles: every lane ends with the result) and a block.</summary>
public static class WarpReductions
{
    public static float Sum(float v)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset >>= 1) v += Warp.ShuffleXor(v, offset);
        return v;
    }

    public static float Max(float v)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset >>= 1) v = MathF.Max(v, Warp.ShuffleXor(v, offset));
        return v;
    }

    /// <summary>The sum over the whole block, returned to every thread; scratch holds one float per warp and may be
    /// reused as soon as this returns.</summary>
    public static float BlockSum(float v, ArrayView<float> scratch)
    {
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx;
        int warps = (Group.DimX + Warp.WarpSize - 1) / Warp.WarpSize;
        v = Sum(v);
        if (lane == 0) scratch[warp] = v;
        Group.Barrier();
        if (warp == 0)
        {
            v = Sum(lane < warps ? scratch[lane] : 0f);
            if (lane == 0) scratch[0] = v;
        }
        Group.Barrier();
        float total = scratch[0];
        Group.Barrier();
        return total;
    }
}
