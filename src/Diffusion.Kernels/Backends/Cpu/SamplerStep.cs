using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// One fused pass of the sampler update (see <see cref="SamplerStepCoefficients"/>): x0 is predicted, clamped
/// and used in the same loop iteration that writes the next sample, so a step reads each input once.
/// </summary>
public sealed partial class CpuBackend
{
    public unsafe void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next)
    {
        var xt = Mine(sample, nameof(sample));
        var mt = Mine(modelOutput, nameof(modelOutput));
        var nt = Mine(next, nameof(next));
        OpContract.SamplerStep(sample, modelOutput, noise, prevX0, x0Out, coefficients, next);
        var c = coefficients;
        CpuTensor? zt = noise == null ? null : Mine(noise, nameof(noise));
        CpuTensor? pt = prevX0 == null ? null : Mine(prevX0, nameof(prevX0));
        CpuTensor? ot = x0Out == null ? null : Mine(x0Out, nameof(x0Out));

        switch (Tier)
        {
            case CpuTier.Avx512: SamplerStep<Simd512, Vector512<float>>(xt, mt, zt, pt, ot, c, nt); break;
            case CpuTier.Avx2: SamplerStep<Simd256, Vector256<float>>(xt, mt, zt, pt, ot, c, nt); break;
            default: SamplerStep<Simd128, Vector128<float>>(xt, mt, zt, pt, ot, c, nt); break;
        }
    }

    private unsafe void SamplerStep<T, TV>(CpuTensor xt, CpuTensor mt, CpuTensor? zt, CpuTensor? pt, CpuTensor? ot,
        SamplerStepCoefficients c, CpuTensor nt) where T : struct, ISimd<TV> where TV : struct
    {
        var p = (X: (nint)xt.Pointer, M: (nint)mt.Pointer, Z: zt == null ? 0 : (nint)zt.Pointer,
            P: pt == null ? 0 : (nint)pt.Pointer, O: ot == null ? 0 : (nint)ot.Pointer, Next: (nint)nt.Pointer);
        ForChunks(xt.Length, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            float* x = (float*)p.X, m = (float*)p.M, z = (float*)p.Z, prev = (float*)p.P, x0Store = (float*)p.O, dst = (float*)p.Next;
            var lo = T.Broadcast(-c.ClipRange);
            var hi = T.Broadcast(c.ClipRange);
            long i = start;
            // Multiplies and adds kept apart, in the scalar tail's order, so every element rounds the same way. The
            // clamp puts the value second, where maxps/minps return a NaN, as Math.Max/Min do.
            for (; i <= end - T.Count; i += T.Count)
            {
                var xv = T.Load(x + i);
                var mv = T.Load(m + i);
                var x0 = T.Min(hi, T.Max(lo, T.Add(T.Multiply(T.Broadcast(c.X0FromSample), xv), T.Multiply(T.Broadcast(c.X0FromModel), mv))));
                var eps = T.Add(T.Multiply(T.Broadcast(c.EpsFromSample), xv), T.Multiply(T.Broadcast(c.EpsFromModel), mv));
                var v = T.Add(T.Add(T.Multiply(T.Broadcast(c.NextFromX0), x0), T.Multiply(T.Broadcast(c.NextFromEps), eps)),
                    T.Multiply(T.Broadcast(c.NextFromSample), xv));
                if (prev != null) v = T.Add(v, T.Multiply(T.Broadcast(c.NextFromPrevX0), T.Load(prev + i)));
                if (z != null) v = T.Add(v, T.Multiply(T.Broadcast(c.NextFromNoise), T.Load(z + i)));
                if (x0Store != null) T.Store(x0, x0Store + i);
                T.Store(v, dst + i);
            }
            for (; i < end; i++)
            {
                float xv = x[i], mv = m[i];
                float x0 = Math.Min(Math.Max(c.X0FromSample * xv + c.X0FromModel * mv, -c.ClipRange), c.ClipRange);
                float eps = c.EpsFromSample * xv + c.EpsFromModel * mv;
                float v = c.NextFromX0 * x0 + c.NextFromEps * eps + c.NextFromSample * xv;
                if (prev != null) v += c.NextFromPrevX0 * prev[i];
                if (z != null) v += c.NextFromNoise * z[i];
                if (x0Store != null) x0Store[i] = x0;
                dst[i] = v;
            }
        });
    }
}
