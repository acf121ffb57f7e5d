using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
        var (src, dst) = ((nint)xt.Pointer, (nint)yt.Pointer);
        ForChunks(x.Length, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            float* s = (float*)src, d = (float*)dst;
            long i = start;
            for (; i <= end - 16; i += 16) SiLUValue(Vector512.Load(s + i)).Store(d + i);
            for (; i < end; i++) d[i] = SiLUValue(s[i]);
        });
    }

    public unsafe void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f)
    {
        var at = Mine(a, nameof(a));
        var bt = Mine(b, nameof(b));
        var yt = Mine(y, nameof(y));
        OpContract.Add(a, b, y);
        var (pa, pb, py) = ((nint)at.Pointer, (nint)bt.Pointer, (nint)yt.Pointer);
        ForChunks(a.Length, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            float* sa = (float*)pa, sb = (float*)pb, d = (float*)py;
            var vscale = Vector512.Create(scale);
            long i = start;
            for (; i <= end - 16; i += 16) ((Vector512.Load(sa + i) + Vector512.Load(sb + i)) * vscale).Store(d + i);
            for (; i < end; i++) d[i] = (sa[i] + sb[i]) * scale;
        });
    }

    public unsafe void Upsample2x(DeviceTensor x, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        OpContract.Upsample2x(x, y);
        int h = x.H, w = x.W;
        var (src, dst) = ((nint)xt.Pointer, (nint)yt.Pointer);
        ForRanges(x.N * x.C, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (first, end) =>
        {
            var pairs = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            for (int plane = first; plane < end; plane++)
            {
                float* s = (float*)src + (long)plane * h * w;
                float* d = (float*)dst + (long)plane * 4 * h * w;
                for (int row = 0; row < h; row++)
                {
                    float* top = d + (long)(2 * row) * 2 * w, bottom = top + 2 * w;
                    float* sr = s + (long)row * w;
                    int col = 0;
                    if (Avx512F.IsSupported)
                    {
                        // Eight inputs, each written twice: one permute, two stores on each output row.
                        for (; col <= w - 8; col += 8)
                        {
                            var twice = Avx512F.PermuteVar16x32(Vector256.Load(sr + col).ToVector512Unsafe(), pairs);
                            twice.Store(top + 2 * col);
                            twice.Store(bottom + 2 * col);
                        }
                    }
                    for (; col < w; col++)
                        top[2 * col] = top[2 * col + 1] = bottom[2 * col] = bottom[2 * col + 1] = sr[col];
                }
            }
        });
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
    internal static Vector512<float> SiLUValue(Vector512<float> x) => x / (Vector512<float>.One + VectorExp.Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float SiLUValue(float x) => x / (1f + MathF.Exp(-x));
}
