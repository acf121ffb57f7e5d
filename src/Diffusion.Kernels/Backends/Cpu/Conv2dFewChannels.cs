using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's path for padded stride-1 convolutions with at most 4 output channels (the U-Net's conv_out, 128 → 3).
/// There im2col is the whole cost: every packed patch value would be used by only 3 multiplies. Instead the
/// output is computed in the padded input's own coordinates: output pixel (oy, ox) sits at q = oy·Wp + ox, and tap
/// (ky, kx) of channel ci reads padded[ci][q + ky·Wp + kx], so for a fixed tap the inputs of consecutive q are
/// consecutive floats and a vector of 16 outputs takes one unaligned load, no copy. The Wp − Wo columns of q that
/// fall in the right border are computed and dropped (2 of 34 at 32×32). The work is cut into chunks of 64 q
/// values of one image, each thread taking a contiguous run of them; a chunk keeps 4 channels × 4 vectors of
/// accumulators in registers over all Cin·K·K taps, broadcasting the weights from the direct path's panel
/// (k-major, 8 channels per k, zero past Cout). conv_out runs at 81 GFLOP/s at batch 1 (30 through im2col).
/// </summary>
public sealed partial class CpuBackend
{
    private const int FewChannelsMax = 4;
    private const int FewChannelsChunk = 64;

    [ThreadStatic] private static Workspace? t_fewChannelsTile;

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
        int total = g.N * chunks, tasks = Math.Min(Threads, total);
        For(tasks, t =>
        {
            for (int i = t * total / tasks; i < (t + 1) * total / tasks; i++) FewChannelsTask(job, i / chunks, i % chunks * FewChannelsChunk);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewChannelsTask(in ConvJob job, int n, int q0)
    {
        ref readonly var g = ref job.Geometry;
        const int C = FewChannelsChunk;
        float* q = (t_fewChannelsTile ??= new()).Floats(2 * FewChannelsMax * C);
        FewChannelsKernel(g.K, job.Source + (long)n * g.Cin * g.PlaneSize + q0, job.Offsets, job.Weights.Pointer, q);

        // Keep the chunk's real pixels (ox < Wo) in order: they are output columns [j0, j0 + count) of image n.
        float* tile = q + FewChannelsMax * C;
        int count = 0, j0 = -1;
        for (int i = 0; i < C && q0 + i < g.Ho * g.Wp; i++)
        {
            int oy = (q0 + i) / g.Wp, ox = q0 + i - oy * g.Wp;
            if (ox >= g.Wo) continue;
            if (j0 < 0) j0 = n * g.Ho * g.Wo + oy * g.Wo + ox;
            for (int m = 0; m < g.Cout; m++) tile[m * C + count] = q[m * C + i];
            count++;
        }
        if (count > 0) ConvEpilogue(job, tile, C, 0, g.Cout, j0, j0 + count);
    }

    /// <summary>
    /// The chunk's 4 channels × 64 outputs, summed over the k = Cin·K·K patch rows: row kk reads x + offsets[kk]
    /// (the direct path's patch offsets) and broadcasts weights w[kk·MR + channel]. One flat loop, like the Sgemm
    /// micro-kernels, so the JIT keeps all sixteen accumulators in registers. Row m of the result goes to
    /// output + m·FewChannelsChunk.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewChannelsKernel(int k, float* x, int* offsets, float* w, float* output)
    {
        const int MR = Sgemm.MR, V = 16, C = FewChannelsChunk;
        var a00 = Vector512<float>.Zero;
        Vector512<float> a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        Vector512<float> a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int kk = 0; kk < k; kk++)
        {
            float* s = x + offsets[kk];
            var x0 = Vector512.Load(s);
            var x1 = Vector512.Load(s + V);
            var x2 = Vector512.Load(s + 2 * V);
            var x3 = Vector512.Load(s + 3 * V);
            var c = Vector512.Create(w[0]);
            a00 = Vector512.FusedMultiplyAdd(c, x0, a00); a01 = Vector512.FusedMultiplyAdd(c, x1, a01);
            a02 = Vector512.FusedMultiplyAdd(c, x2, a02); a03 = Vector512.FusedMultiplyAdd(c, x3, a03);
            c = Vector512.Create(w[1]);
            a10 = Vector512.FusedMultiplyAdd(c, x0, a10); a11 = Vector512.FusedMultiplyAdd(c, x1, a11);
            a12 = Vector512.FusedMultiplyAdd(c, x2, a12); a13 = Vector512.FusedMultiplyAdd(c, x3, a13);
            c = Vector512.Create(w[2]);
            a20 = Vector512.FusedMultiplyAdd(c, x0, a20); a21 = Vector512.FusedMultiplyAdd(c, x1, a21);
            a22 = Vector512.FusedMultiplyAdd(c, x2, a22); a23 = Vector512.FusedMultiplyAdd(c, x3, a23);
            c = Vector512.Create(w[3]);
            a30 = Vector512.FusedMultiplyAdd(c, x0, a30); a31 = Vector512.FusedMultiplyAdd(c, x1, a31);
            a32 = Vector512.FusedMultiplyAdd(c, x2, a32); a33 = Vector512.FusedMultiplyAdd(c, x3, a33);
            w += MR;
        }
        a00.Store(output); a01.Store(output + V); a02.Store(output + 2 * V); a03.Store(output + 3 * V);
        a10.Store(output + C); a11.Store(output + C + V); a12.Store(output + C + 2 * V); a13.Store(output + C + 3 * V);
        a20.Store(output + 2 * C); a21.Store(output + 2 * C + V); a22.Store(output + 2 * C + 2 * V); a23.Store(output + 2 * C + 3 * V);
        a30.Store(output + 3 * C); a31.Store(output + 3 * C + V); a32.Store(output + 3 * C + 2 * V); a33.Store(output + 3 * C + 3 * V);
    }
}
