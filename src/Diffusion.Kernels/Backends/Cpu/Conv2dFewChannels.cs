using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's path for padded stride-1 convolutions with at most 3 output channels (the U-Net's conv_out, 128 → 3).
/// There im2col is the whole cost: every packed patch value would be used by only 3 multiplies. Instead the
/// output is computed in the padded input's own coordinates: output pixel (oy, ox) sits at q = oy·Wp + ox, and tap
/// (ky, kx) of channel ci reads padded[ci][q + ky·Wp + kx], so for a fixed tap the inputs of consecutive q are
/// consecutive floats and a vector of 16 outputs takes one unaligned load, no copy. The Wp − Wo columns of q that
/// fall in the right border are computed and dropped (2 of 34 at 32×32). The work is cut into chunks of 128 q
/// values of one image (FewChannelVectors vectors: 8 of 16 on AVX-512, 4 of 8 on AVX2), handed out in a few contiguous
/// runs per thread; a chunk keeps 3 channels × those vectors of accumulators in registers over all Cin·K·K taps
/// (24 of 32 zmm, 12 of 16 ymm), broadcasting the weights from the direct path's panel (k-major, MR channels per k,
/// zero past Cout). conv_out: 150 GFLOP/s at batch 8 on AVX-512 (38 through im2col).
/// </summary>
public sealed partial class CpuBackend
{
    private const int FewChannelsMax = 3;

    /// <summary>Outputs of one chunk: the tier's accumulator vectors per channel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int FewChannelsChunk<T, TV>() where T : struct, ISimd<TV> where TV : struct => T.FewChannelVectors * T.Count;

    [ThreadStatic] private static Workspace? t_fewChannelsSums;

    private static bool UsesFewChannels(in ConvGeometry g) =>
        g.Cout <= FewChannelsMax && g.Stride == 1 && g.PadBegin + g.PadEnd > 0;

    /// <summary>
    /// Floats the last chunk of the last image may read past the padded input: its q run past Ho·Wp by up to a chunk
    /// less one, plus the farthest tap's offset, ends at most Chunk + Kernel floats beyond the last plane.
    /// </summary>
    private static int FewChannelsSlack<T, TV>(in ConvGeometry g) where T : struct, ISimd<TV> where TV : struct =>
        FewChannelsChunk<T, TV>() + g.Kernel;

    private unsafe void Conv2dFewChannels<T, TV>(ConvJob job) where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        int chunk = FewChannelsChunk<T, TV>();
        int chunks = (g.Ho * g.Wp + chunk - 1) / chunk;
        ForRanges(g.N * chunks, (first, end) =>
        {
            for (int i = first; i < end; i++) FewChannelsTask<T, TV>(job, i / chunks, i % chunks * chunk);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewChannelsTask<T, TV>(in ConvJob job, int n, int q0) where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        int C = FewChannelsChunk<T, TV>();
        float* sums = (t_fewChannelsSums ??= new()).Floats(FewChannelsMax * C);
        FewChannelsKernel<T, TV>(g.K, job.Source + (long)n * g.Cin * g.PlaneSize + q0, job.Offsets, job.Weights.Pointer, sums);

        // Through the shared epilogue one run of an output row at a time: a run's sums and its output columns are
        // both contiguous, so the border columns are skipped without copying anything.
        int end = Math.Min(q0 + C, g.Ho * g.Wp);
        for (int q = q0; q < end;)
        {
            int oy = q / g.Wp, ox = q - oy * g.Wp;
            int length = Math.Min(g.Wo - ox, end - q);
            if (length > 0)
            {
                int j = n * g.Ho * g.Wo + oy * g.Wo + ox;
                ConvEpilogue<T, TV>(job, sums + (q - q0), C, 0, g.Cout, j, j + length);
            }
            q += g.Wp - ox;
        }
    }

    /// <summary>
    /// The chunk's 3 channels × FewChannelVectors vectors of outputs, summed over the k = Cin·K·K patch rows: row kk
    /// reads x + offsets[kk] (the direct path's patch offsets) and broadcasts weights w[kk·MR + channel]. One flat
    /// loop, like the Sgemm micro-kernels, so the JIT keeps every accumulator in registers; written for up to 8
    /// vectors, the ones past the tier's count are constant-false branches the JIT drops. Row m of the result goes to
    /// output + m·chunk.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewChannelsKernel<T, TV>(int k, float* x, int* offsets, float* w, float* output)
        where T : struct, ISimd<TV> where TV : struct
    {
        int mr = T.MR, n = T.Count, C = FewChannelsChunk<T, TV>();
        bool eight = T.FewChannelVectors == 8;
        var z = T.Zero;
        TV a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
        TV b0 = z, b1 = z, b2 = z, b3 = z, b4 = z, b5 = z, b6 = z, b7 = z;
        TV c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z;
        for (int kk = 0; kk < k; kk++)
        {
            float* s = x + offsets[kk];
            var wa = T.Broadcast(w[0]);
            var wb = T.Broadcast(w[1]);
            var wc = T.Broadcast(w[2]);
            var v = T.Load(s);
            a0 = T.FusedMultiplyAdd(wa, v, a0); b0 = T.FusedMultiplyAdd(wb, v, b0); c0 = T.FusedMultiplyAdd(wc, v, c0);
            v = T.Load(s + n);
            a1 = T.FusedMultiplyAdd(wa, v, a1); b1 = T.FusedMultiplyAdd(wb, v, b1); c1 = T.FusedMultiplyAdd(wc, v, c1);
            v = T.Load(s + 2 * n);
            a2 = T.FusedMultiplyAdd(wa, v, a2); b2 = T.FusedMultiplyAdd(wb, v, b2); c2 = T.FusedMultiplyAdd(wc, v, c2);
            v = T.Load(s + 3 * n);
            a3 = T.FusedMultiplyAdd(wa, v, a3); b3 = T.FusedMultiplyAdd(wb, v, b3); c3 = T.FusedMultiplyAdd(wc, v, c3);
            if (eight)
            {
                v = T.Load(s + 4 * n);
                a4 = T.FusedMultiplyAdd(wa, v, a4); b4 = T.FusedMultiplyAdd(wb, v, b4); c4 = T.FusedMultiplyAdd(wc, v, c4);
                v = T.Load(s + 5 * n);
                a5 = T.FusedMultiplyAdd(wa, v, a5); b5 = T.FusedMultiplyAdd(wb, v, b5); c5 = T.FusedMultiplyAdd(wc, v, c5);
                v = T.Load(s + 6 * n);
                a6 = T.FusedMultiplyAdd(wa, v, a6); b6 = T.FusedMultiplyAdd(wb, v, b6); c6 = T.FusedMultiplyAdd(wc, v, c6);
                v = T.Load(s + 7 * n);
                a7 = T.FusedMultiplyAdd(wa, v, a7); b7 = T.FusedMultiplyAdd(wb, v, b7); c7 = T.FusedMultiplyAdd(wc, v, c7);
            }
            w += mr;
        }
        StoreRow(output, n, eight, a0, a1, a2, a3, a4, a5, a6, a7);
        StoreRow(output + C, n, eight, b0, b1, b2, b3, b4, b5, b6, b7);
        StoreRow(output + 2 * C, n, eight, c0, c1, c2, c3, c4, c5, c6, c7);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StoreRow(float* o, int n, bool eight, TV v0, TV v1, TV v2, TV v3, TV v4, TV v5, TV v6, TV v7)
        {
            T.Store(v0, o); T.Store(v1, o + n); T.Store(v2, o + 2 * n); T.Store(v3, o + 3 * n);
            if (!eight) return;
            T.Store(v4, o + 4 * n); T.Store(v5, o + 5 * n); T.Store(v6, o + 6 * n); T.Store(v7, o + 7 * n);
        }
    }
}
