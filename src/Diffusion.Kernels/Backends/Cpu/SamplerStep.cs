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
        const string Op = "SamplerStep";
        var xt = Mine(sample, nameof(sample));
        var mt = Mine(modelOutput, nameof(modelOutput));
        var nt = Mine(next, nameof(next));
        Require(modelOutput.SameShape(sample) && next.SameShape(sample), Op,
            $"sample {Describe(sample)}, model output {Describe(modelOutput)} and next {Describe(next)} differ");
        var c = coefficients;
        CpuTensor? zt = OptionalInput(noise, c.NextFromNoise, nameof(noise), sample);
        CpuTensor? pt = OptionalInput(prevX0, c.NextFromPrevX0, nameof(prevX0), sample);
        CpuTensor? ot = null;
        if (x0Out != null)
        {
            ot = Mine(x0Out, nameof(x0Out));
            Require(x0Out.SameShape(sample), Op, $"x0Out {Describe(x0Out)} does not match sample {Describe(sample)}");
            Require(!ReferenceEquals(x0Out, next), Op, "x0Out may not alias next");
        }

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

    private CpuTensor? OptionalInput(DeviceTensor? tensor, float coefficient, string name, DeviceTensor sample)
    {
        if (tensor == null)
        {
            Require(coefficient == 0f, "SamplerStep", $"{name} is missing but its coefficient is {coefficient}");
            return null;
        }
        var t = Mine(tensor, name);
        Require(tensor.SameShape(sample), "SamplerStep", $"{name} {Describe(tensor)} does not match sample {Describe(sample)}");
        return t;
    }
}
