using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// GroupNorm: each (image, group) is one contiguous block of (C/groups)·H·W values, so a task owns one block.
/// Two passes over it for the statistics (mean, then the centred sum of squares, summed per channel in float
/// lanes and across channels in double) keep the variance accurate even when |mean| ≫ std, which a one-pass
/// E[x²] − E[x]² in float32 would not. A third pass applies y = x·scale_c + shift_c (+ SiLU), with
/// scale_c = γ_c/σ and shift_c = β_c − μ·scale_c folded per channel, the same folding PyTorch uses.
/// </summary>
public sealed partial class CpuBackend
{
    public unsafe void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        var gt = Mine(gamma, nameof(gamma));
        var bt = Mine(beta, nameof(beta));
        OpContract.GroupNorm(x, gamma, beta, groups, eps, y);

        int channels = x.C;
        int perGroup = channels / groups;
        long plane = x.Length / ((long)x.N * channels);
        var job = (X: (nint)xt.Pointer, Y: (nint)yt.Pointer, Gamma: (nint)gt.Pointer, Beta: (nint)bt.Pointer);
        ForRanges(x.N * groups, (first, end) =>
        {
            for (int block = first; block < end; block++)
            {
                long offset = (long)block * perGroup * plane;
                int c0 = block % groups * perGroup;
                GroupNormBlock((float*)job.X + offset, (float*)job.Y + offset, (float*)job.Gamma + c0, (float*)job.Beta + c0,
                    perGroup, plane, eps, silu);
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void GroupNormBlock(float* x, float* y, float* gamma, float* beta, int channels, long plane, float eps, bool silu)
    {
        long count = channels * plane;
        double sum = 0;
        for (int c = 0; c < channels; c++) sum += SumPlane(x + c * plane, plane);
        double mean = sum / count;
        double squares = 0;
        for (int c = 0; c < channels; c++) squares += SumSquaresPlane(x + c * plane, plane, (float)mean);
        double rstd = 1.0 / Math.Sqrt(squares / count + eps);
        for (int c = 0; c < channels; c++)
        {
            double scale = gamma[c] * rstd;
            var vscale = Vector512.Create((float)scale);
            var vshift = Vector512.Create((float)(beta[c] - mean * scale));
            float* src = x + c * plane, dst = y + c * plane;
            long i = 0;
            for (; i <= plane - 16; i += 16)
            {
                var v = Vector512.FusedMultiplyAdd(Vector512.Load(src + i), vscale, vshift);
                if (silu) v = SiLUValue(v);
                v.Store(dst + i);
            }
            for (; i < plane; i++)
            {
                float v = MathF.FusedMultiplyAdd(src[i], (float)scale, (float)(beta[c] - mean * scale));
                dst[i] = silu ? SiLUValue(v) : v;
            }
        }
    }

    private static unsafe double SumPlane(float* x, long length)
    {
        var acc = Vector512<float>.Zero;
        long i = 0;
        for (; i <= length - 16; i += 16) acc += Vector512.Load(x + i);
        double sum = 0;
        for (int lane = 0; lane < 16; lane++) sum += acc[lane];
        for (; i < length; i++) sum += x[i];
        return sum;
    }

    private static unsafe double SumSquaresPlane(float* x, long length, float mean)
    {
        var vmean = Vector512.Create(mean);
        var acc = Vector512<float>.Zero;
        long i = 0;
        for (; i <= length - 16; i += 16)
        {
            var d = Vector512.Load(x + i) - vmean;
            acc = Vector512.FusedMultiplyAdd(d, d, acc);
        }
        double sum = 0;
        for (int lane = 0; lane < 16; lane++) sum += acc[lane];
        for (; i < length; i++)
        {
            double d = x[i] - mean;
            sum += d * d;
        }
        return sum;
    }
}
