using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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

        var p = (X: (nint)xt.Pointer, M: (nint)mt.Pointer, Z: zt == null ? 0 : (nint)zt.Pointer,
            P: pt == null ? 0 : (nint)pt.Pointer, O: ot == null ? 0 : (nint)ot.Pointer, Next: (nint)nt.Pointer);
        ForChunks(sample.Length, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            float* x = (float*)p.X, m = (float*)p.M, z = (float*)p.Z, prev = (float*)p.P, x0Store = (float*)p.O, dst = (float*)p.Next;
            var lo = Vector512.Create(-c.ClipRange);
            var hi = Vector512.Create(c.ClipRange);
            long i = start;
            for (; i <= end - 16; i += 16)
            {
                var xv = Vector512.Load(x + i);
                var mv = Vector512.Load(m + i);
                var x0 = Vector512.Min(Vector512.Max(Vector512.Create(c.X0FromSample) * xv + Vector512.Create(c.X0FromModel) * mv, lo), hi);
                var eps = Vector512.Create(c.EpsFromSample) * xv + Vector512.Create(c.EpsFromModel) * mv;
                var v = Vector512.Create(c.NextFromX0) * x0 + Vector512.Create(c.NextFromEps) * eps + Vector512.Create(c.NextFromSample) * xv;
                if (prev != null) v += Vector512.Create(c.NextFromPrevX0) * Vector512.Load(prev + i);
                if (z != null) v += Vector512.Create(c.NextFromNoise) * Vector512.Load(z + i);
                if (x0Store != null) x0.Store(x0Store + i);
                v.Store(dst + i);
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
