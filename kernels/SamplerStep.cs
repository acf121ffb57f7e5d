// SamplerStep — the GPU twin of CpuBackend.SamplerStep.
//
// One fused pass per denoising step for every scheduler (DDPM, DDIM, DPM-Solver++(2M), Euler ancestral): the host
// reduces the step to the scalars of SamplerStepCoefficients (float64, passed as float32) and each thread applies
// them to one value:
//   x0   = clamp(X0FromSample·x + X0FromModel·m, −ClipRange, ClipRange)
//   eps  = EpsFromSample·x + EpsFromModel·m
//   next = NextFromX0·x0 + NextFromEps·eps + NextFromSample·x [+ NextFromPrevX0·x0_prev] [+ NextFromNoise·z]
// in the CPU backend's order, bracketed terms only when their tensor is present (flags), every product and sum
// rounded on its own (RoundedMath: ptxas would otherwise fuse them into fmas), so the result equals the CPU
// backend's to the bit on every device. next may alias x: each value is read before it is written. The ten coefficients are read from a device tensor (SamplerStepCoefficients'
// order), not passed as parameters, so a CUDA graph that captured a step replays every step with new values.
//
// Versions: one. Reading four tensors and writing one or two is pure bandwidth.

using ILGPU;
using static Diffusion.Kernels.Gpu.RoundedMath;

namespace Diffusion.Kernels.Gpu;

public struct SamplerStepParams
{
    /// <summary>1 when the tensor holds data, 0 when it is a one-element placeholder.</summary>
    public int HasNoise, HasPrevX0, HasX0Out;
}

/// <summary>Where each coefficient sits in the coefficients tensor.</summary>
public static class SamplerStepSlot
{
    public const int X0FromSample = 0, X0FromModel = 1, ClipRange = 2, EpsFromSample = 3, EpsFromModel = 4,
        NextFromX0 = 5, NextFromEps = 6, NextFromSample = 7, NextFromPrevX0 = 8, NextFromNoise = 9, Count = 10;
}

public static class SamplerStep
{
    public static void Version1(Index1D index, SamplerStepParams p, ArrayView<float> k, ArrayView<float> sample, ArrayView<float> modelOutput,
        ArrayView<float> noise, ArrayView<float> prevX0, ArrayView<float> x0Out, ArrayView<float> next)
    {
        float x = sample[index], m = modelOutput[index];
        float clip = k[SamplerStepSlot.ClipRange];
        float x0 = MathF.Min(MathF.Max(Add(Mul(k[SamplerStepSlot.X0FromSample], x), Mul(k[SamplerStepSlot.X0FromModel], m)), -clip), clip);
        float eps = Add(Mul(k[SamplerStepSlot.EpsFromSample], x), Mul(k[SamplerStepSlot.EpsFromModel], m));
        float value = Add(Add(Mul(k[SamplerStepSlot.NextFromX0], x0), Mul(k[SamplerStepSlot.NextFromEps], eps)), Mul(k[SamplerStepSlot.NextFromSample], x));
        if (p.HasPrevX0 != 0) value = Add(value, Mul(k[SamplerStepSlot.NextFromPrevX0], prevX0[index]));
        if (p.HasNoise != 0) value = Add(value, Mul(k[SamplerStepSlot.NextFromNoise], noise[index]));
        if (p.HasX0Out != 0) x0Out[index] = x0;
        next[index] = value;
    }
}
