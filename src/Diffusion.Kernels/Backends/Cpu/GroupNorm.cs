using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu.Simd;

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

        switch (Tier)
        {
            case CpuTier.Avx512: GroupNorm<Simd512, Vector512<float>>(xt, gt, bt, groups, eps, silu, yt); break;
            case CpuTier.Avx2: GroupNorm<Simd256, Vector256<float>>(xt, gt, bt, groups, eps, silu, yt); break;
            default: GroupNorm<Simd128, Vector128<float>>(xt, gt, bt, groups, eps, silu, yt); break;
        }
    }

    private unsafe void GroupNorm<T, TV>(CpuTensor x, CpuTensor gamma, CpuTensor beta, int groups, float eps, bool silu, CpuTensor y)
        where T : struct, ISimd<TV> where TV : struct
    {
        int channels = x.C;
        int perGroup = channels / groups;
        long plane = x.Length / ((long)x.N * channels);
        var job = (X: (nint)x.Pointer, Y: (nint)y.Pointer, Gamma: (nint)gamma.Pointer, Beta: (nint)beta.Pointer);
        ForRanges(x.N * groups, (first, end) =>
        {
            for (int block = first; block < end; block++)
            {
                long offset = (long)block * perGroup * plane;
                int c0 = block % groups * perGroup;
                GroupNormBlock<T, TV>((float*)job.X + offset, (float*)job.Y + offset, (float*)job.Gamma + c0, (float*)job.Beta + c0,
                    perGroup, plane, eps, silu);
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void GroupNormBlock<T, TV>(float* x, float* y, float* gamma, float* beta, int channels, long plane, float eps, bool silu)
        where T : struct, ISimd<TV> where TV : struct
    {
        long count = channels * plane;
        float* lanes = stackalloc float[T.Count];
        double sum = 0;
        for (int c = 0; c < channels; c++) sum += SumPlane<T, TV>(x + c * plane, plane, lanes);
        double mean = sum / count;
        double squares = 0;
        for (int c = 0; c < channels; c++) squares += SumSquaresPlane<T, TV>(x + c * plane, plane, (float)mean, lanes);
        double rstd = 1.0 / Math.Sqrt(squares / count + eps);
        for (int c = 0; c < channels; c++)
        {
            double scale = gamma[c] * rstd;
            var vscale = T.Broadcast((float)scale);
            var vshift = T.Broadcast((float)(beta[c] - mean * scale));
            float* src = x + c * plane, dst = y + c * plane;
            long i = 0;
            for (; i <= plane - T.Count; i += T.Count)
            {
                var v = T.FusedMultiplyAdd(T.Load(src + i), vscale, vshift);
                if (silu) v = SiLUValue<T, TV>(v);
                T.Store(v, dst + i);
            }
            for (; i < plane; i++)
            {
                float v = MathF.FusedMultiplyAdd(src[i], (float)scale, (float)(beta[c] - mean * scale));
                dst[i] = silu ? SiLUValue(v) : v;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe double SumPlane<T, TV>(float* x, long length, float* lanes) where T : struct, ISimd<TV> where TV : struct
    {
        var acc = T.Zero;
        long i = 0;
        for (; i <= length - T.Count; i += T.Count) acc = T.Add(acc, T.Load(x + i));
        double sum = SumLanes<T, TV>(acc, lanes);
        for (; i < length; i++) sum += x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe double SumSquaresPlane<T, TV>(float* x, long length, float mean, float* lanes) where T : struct, ISimd<TV> where TV : struct
    {
        var vmean = T.Broadcast(mean);
        var acc = T.Zero;
        long i = 0;
        for (; i <= length - T.Count; i += T.Count)
        {
            var d = T.Subtract(T.Load(x + i), vmean);
            acc = T.FusedMultiplyAdd(d, d, acc);
        }
        double sum = SumLanes<T, TV>(acc, lanes);
        for (; i < length; i++)
        {
            double d = x[i] - mean;
            sum += d * d;
        }
        return sum;
    }

    /// <summary>The lanes of a float accumulator summed in double (through <paramref name="lanes"/>, a vector of scratch), as the statistics' cross-channel sums are.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe double SumLanes<T, TV>(TV acc, float* lanes) where T : struct, ISimd<TV> where TV : struct
    {
        T.Store(acc, lanes);
        double sum = 0;
        for (int lane = 0; lane < T.Count; lane++) sum += lanes[lane];
        return sum;
    }
}
