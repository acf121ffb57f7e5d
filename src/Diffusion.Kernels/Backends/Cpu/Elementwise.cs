using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The memory-bound ops: SiLU, Add, Upsample2x, Concat and the sinusoidal TimestepEmbedding. Each is one
/// vectorised pass split into per-thread chunks; none is worth more cleverness than that.
/// </summary>
public sealed partial class CpuBackend
{
    public unsafe void SiLU(DeviceTensor x, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        OpContract.SiLU(x, y);
        switch (Tier)
        {
            case CpuTier.Avx512: SiLU<Simd512, Vector512<float>>(xt, yt); break;
            case CpuTier.Avx2: SiLU<Simd256, Vector256<float>>(xt, yt); break;
            default: SiLU<Simd128, Vector128<float>>(xt, yt); break;
        }
    }

    private unsafe void SiLU<T, TV>(CpuTensor x, CpuTensor y) where T : struct, ISimd<TV> where TV : struct
    {
        var (src, dst) = ((nint)x.Pointer, (nint)y.Pointer);
        ForChunks(x.Length, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            float* s = (float*)src, d = (float*)dst;
            long i = start;
            for (; i <= end - T.Count; i += T.Count) T.Store(SiLUValue<T, TV>(T.Load(s + i)), d + i);
            for (; i < end; i++) d[i] = SiLUValue(s[i]);
        });
    }

    public unsafe void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f)
    {
        var at = Mine(a, nameof(a));
        var bt = Mine(b, nameof(b));
        var yt = Mine(y, nameof(y));
        OpContract.Add(a, b, y);
        switch (Tier)
        {
            case CpuTier.Avx512: Add<Simd512, Vector512<float>>(at, bt, yt, scale); break;
            case CpuTier.Avx2: Add<Simd256, Vector256<float>>(at, bt, yt, scale); break;
            default: Add<Simd128, Vector128<float>>(at, bt, yt, scale); break;
        }
    }

    private unsafe void Add<T, TV>(CpuTensor a, CpuTensor b, CpuTensor y, float scale) where T : struct, ISimd<TV> where TV : struct
    {
        var (pa, pb, py) = ((nint)a.Pointer, (nint)b.Pointer, (nint)y.Pointer);
        ForChunks(a.Length, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            float* sa = (float*)pa, sb = (float*)pb, d = (float*)py;
            var vscale = T.Broadcast(scale);
            long i = start;
            for (; i <= end - T.Count; i += T.Count) T.Store(T.Multiply(T.Add(T.Load(sa + i), T.Load(sb + i)), vscale), d + i);
            for (; i < end; i++) d[i] = (sa[i] + sb[i]) * scale;
        });
    }

    public unsafe void Upsample2x(DeviceTensor x, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        OpContract.Upsample2x(x, y);
        switch (Tier)
        {
            case CpuTier.Avx512: Upsample2x<Simd512, Vector512<float>>(xt, yt); break;
            case CpuTier.Avx2: Upsample2x<Simd256, Vector256<float>>(xt, yt); break;
            default: Upsample2x<Simd128, Vector128<float>>(xt, yt); break;
        }
    }

    private unsafe void Upsample2x<T, TV>(CpuTensor x, CpuTensor y) where T : struct, ISimd<TV> where TV : struct
    {
        int h = x.H, w = x.W;
        var (src, dst) = ((nint)x.Pointer, (nint)y.Pointer);
        ForRanges(x.N * x.C, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (first, end) =>
        {
            int n = T.Count;
            for (int plane = first; plane < end; plane++)
            {
                float* s = (float*)src + (long)plane * h * w;
                float* d = (float*)dst + (long)plane * 4 * h * w;
                for (int row = 0; row < h; row++)
                {
                    float* top = d + (long)(2 * row) * 2 * w, bottom = top + 2 * w;
                    float* sr = s + (long)row * w;
                    int col = Upsample2xRow<T, TV>(sr, top, bottom, 0, w);
                    // Rows of 8 (the 8×8 level) are shorter than a zmm: on AVX-512 they go through the AVX2 tier's ymm.
                    if (n > 8) col = Upsample2xRow<Simd256, Vector256<float>>(sr, top, bottom, col, w);
                    for (; col < w; col++)
                        top[2 * col] = top[2 * col + 1] = bottom[2 * col] = bottom[2 * col + 1] = sr[col];
                }
            }
        });
    }

    /// <summary>
    /// Input columns [col, …) of one row, a vector at a time, into both output rows; returns the first column left
    /// for the scalar tail. Each vector interleaved with itself fills two vectors of an output row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe int Upsample2xRow<T, TV>(float* sr, float* top, float* bottom, int col, int w) where T : struct, ISimd<TV> where TV : struct
    {
        int n = T.Count;
        for (; col <= w - n; col += n)
        {
            var v = T.Load(sr + col);
            var lower = T.InterleaveLower(v, v);
            var upper = T.InterleaveUpper(v, v);
            T.Store(lower, top + 2 * col); T.Store(upper, top + 2 * col + n);
            T.Store(lower, bottom + 2 * col); T.Store(upper, bottom + 2 * col + n);
        }
        return col;
    }

    public unsafe void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y)
    {
        var at = Mine(a, nameof(a));
        var bt = Mine(b, nameof(b));
        var yt = Mine(y, nameof(y));
        OpContract.Concat(a, b, y);
        long aImage = a.Length / a.N, bImage = b.Length / b.N;
        var (pa, pb, py) = ((nint)at.Pointer, (nint)bt.Pointer, (nint)yt.Pointer);
        For(2 * a.N, part =>
        {
            int n = part / 2;
            float* d = (float*)py + n * (aImage + bImage);
            if (part % 2 == 0)
                Buffer.MemoryCopy((float*)pa + n * aImage, d, aImage * sizeof(float), aImage * sizeof(float));
            else
                Buffer.MemoryCopy((float*)pb + n * bImage, d + aImage, bImage * sizeof(float), bImage * sizeof(float));
        });
    }

    /// <summary>
    /// Repeats diffusers' get_timestep_embedding operation by operation in float32 (exponent = −ln(10000)·k,
    /// divided by half − shift, exp, times t, then sin and cos) so the rounding matches the PyTorch original.
    /// </summary>
    public unsafe void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y)
    {
        var yt = Mine(y, nameof(y));
        int dim = OpContract.TimestepEmbedding(timesteps.Length, freqShift, y);
        int half = dim / 2;
        float logPeriod = (float)-Math.Log(10000.0);
        float denominator = half - freqShift;
        Span<float> row = yt.Span;
        for (int n = 0; n < timesteps.Length; n++)
        {
            float t = timesteps[n];
            var dst = row.Slice(n * dim, dim);
            for (int k = 0; k < half; k++)
            {
                float exponent = logPeriod * k / denominator;
                float angle = t * MathF.Exp(exponent);
                float sin = MathF.Sin(angle), cos = MathF.Cos(angle);
                dst[k] = flipSinToCos ? cos : sin;
                dst[half + k] = flipSinToCos ? sin : cos;
            }
            if (dim % 2 == 1) dst[dim - 1] = 0f;
        }
    }

    /// <summary>x·σ(x) written as x / (1 + e^−x), PyTorch's CPU formula.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TV SiLUValue<T, TV>(TV x) where T : struct, ISimd<TV> where TV : struct =>
        T.Divide(x, T.Add(T.Broadcast(1f), VectorExp.Exp<T, TV>(T.Subtract(T.Zero, x))));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float SiLUValue(float x) => x / (1f + MathF.Exp(-x));
}
