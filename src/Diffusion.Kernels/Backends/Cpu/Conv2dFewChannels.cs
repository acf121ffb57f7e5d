using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's path for padded stride-1 convolutions with at most 3 output channels (the U-Net's conv_out, 128 → 3).
/// There im2col is the whole cost: every packed patch value would be used by only 3 multiplies. Instead the
/// output is computed in the padded input's own coordinates: output pixel (oy, ox) sits at q = oy·Wp + ox, and tap
/// (ky, kx) of channel ci reads padded[ci][q + ky·Wp + kx], so for a fixed tap the inputs of consecutive q are
/// consecutive floats and a vector of 16 outputs takes one unaligned load, no copy. The Wp − Wo columns of q that
/// fall in the right border are computed and dropped (2 of 34 at 32×32). The work is cut into chunks of 128 q
/// values of one image, handed out in a few contiguous runs per thread; a chunk keeps 3 channels × 8 vectors of
/// accumulators in registers over all Cin·K·K taps, broadcasting the weights from the direct path's panel
/// (k-major, 8 channels per k, zero past Cout). conv_out: 150 GFLOP/s at batch 8 (38 through im2col).
/// </summary>
public sealed partial class CpuBackend
{
    private const int FewChannelsMax = 3;
    private const int FewChannelsChunk = 128;

    [ThreadStatic] private static Workspace? t_fewChannelsSums;

    private static bool UsesFewChannels(in ConvGeometry g) =>
        g.Cout <= FewChannelsMax && g.Stride == 1 && g.PadBegin + g.PadEnd > 0;

    /// <summary>
    /// Floats the last chunk of the last image may read past the padded input: its q run past Ho·Wp by up to a chunk
    /// less one, plus the farthest tap's offset, ends at most Chunk + Kernel floats beyond the last plane.
    /// </summary>
    private static int FewChannelsSlack(in ConvGeometry g) => FewChannelsChunk + g.Kernel;

    private unsafe void Conv2dFewChannels(ConvJob job)
    {
        ref readonly var g = ref job.Geometry;
        int chunks = (g.Ho * g.Wp + FewChannelsChunk - 1) / FewChannelsChunk;
        ForRanges(g.N * chunks, (first, end) =>
        {
            for (int i = first; i < end; i++) FewChannelsTask(job, i / chunks, i % chunks * FewChannelsChunk);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewChannelsTask(in ConvJob job, int n, int q0)
    {
        ref readonly var g = ref job.Geometry;
        const int C = FewChannelsChunk;
        float* sums = (t_fewChannelsSums ??= new()).Floats(FewChannelsMax * C);
        FewChannelsKernel(g.K, job.Source + (long)n * g.Cin * g.PlaneSize + q0, job.Offsets, job.Weights.Pointer, sums);

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
                ConvEpilogue(job, sums + (q - q0), C, 0, g.Cout, j, j + length);
            }
            q += g.Wp - ox;
        }
    }

    /// <summary>
    /// The chunk's 3 channels × 128 outputs, summed over the k = Cin·K·K patch rows: row kk reads x + offsets[kk]
    /// (the direct path's patch offsets) and broadcasts weights w[kk·MR + channel]. One flat loop, like the Sgemm
    /// micro-kernels, so the JIT keeps all 24 accumulators in registers. Row m of the result goes to
    /// output + m·FewChannelsChunk.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewChannelsKernel(int k, float* x, int* offsets, float* w, float* output)
    {
        const int MR = Sgemm.MR, V = 16, C = FewChannelsChunk;
        var a0 = Vector512<float>.Zero;
        Vector512<float> a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector512<float> b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
        Vector512<float> c0 = a0, c1 = a0, c2 = a0, c3 = a0, c4 = a0, c5 = a0, c6 = a0, c7 = a0;
        for (int kk = 0; kk < k; kk++)
        {
            float* s = x + offsets[kk];
            var wa = Vector512.Create(w[0]);
            var wb = Vector512.Create(w[1]);
            var wc = Vector512.Create(w[2]);
            var v = Vector512.Load(s);
            a0 = Vector512.FusedMultiplyAdd(wa, v, a0); b0 = Vector512.FusedMultiplyAdd(wb, v, b0); c0 = Vector512.FusedMultiplyAdd(wc, v, c0);
            v = Vector512.Load(s + V);
            a1 = Vector512.FusedMultiplyAdd(wa, v, a1); b1 = Vector512.FusedMultiplyAdd(wb, v, b1); c1 = Vector512.FusedMultiplyAdd(wc, v, c1);
            v = Vector512.Load(s + 2 * V);
            a2 = Vector512.FusedMultiplyAdd(wa, v, a2); b2 = Vector512.FusedMultiplyAdd(wb, v, b2); c2 = Vector512.FusedMultiplyAdd(wc, v, c2);
            v = Vector512.Load(s + 3 * V);
            a3 = Vector512.FusedMultiplyAdd(wa, v, a3); b3 = Vector512.FusedMultiplyAdd(wb, v, b3); c3 = Vector512.FusedMultiplyAdd(wc, v, c3);
            v = Vector512.Load(s + 4 * V);
            a4 = Vector512.FusedMultiplyAdd(wa, v, a4); b4 = Vector512.FusedMultiplyAdd(wb, v, b4); c4 = Vector512.FusedMultiplyAdd(wc, v, c4);
            v = Vector512.Load(s + 5 * V);
            a5 = Vector512.FusedMultiplyAdd(wa, v, a5); b5 = Vector512.FusedMultiplyAdd(wb, v, b5); c5 = Vector512.FusedMultiplyAdd(wc, v, c5);
            v = Vector512.Load(s + 6 * V);
            a6 = Vector512.FusedMultiplyAdd(wa, v, a6); b6 = Vector512.FusedMultiplyAdd(wb, v, b6); c6 = Vector512.FusedMultiplyAdd(wc, v, c6);
            v = Vector512.Load(s + 7 * V);
            a7 = Vector512.FusedMultiplyAdd(wa, v, a7); b7 = Vector512.FusedMultiplyAdd(wb, v, b7); c7 = Vector512.FusedMultiplyAdd(wc, v, c7);
            w += MR;
        }
        a0.Store(output); a1.Store(output + V); a2.Store(output + 2 * V); a3.Store(output + 3 * V);
        a4.Store(output + 4 * V); a5.Store(output + 5 * V); a6.Store(output + 6 * V); a7.Store(output + 7 * V);
        float* o = output + C;
        b0.Store(o); b1.Store(o + V); b2.Store(o + 2 * V); b3.Store(o + 3 * V);
        b4.Store(o + 4 * V); b5.Store(o + 5 * V); b6.Store(o + 6 * V); b7.Store(o + 7 * V);
        o += C;
        c0.Store(o); c1.Store(o + V); c2.Store(o + 2 * V); c3.Store(o + 3 * V);
        c4.Store(o + 4 * V); c5.Store(o + 5 * V); c6.Store(o + 6 * V); c7.Store(o + 7 * V);
    }
}
