using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's fast path for the U-Net's 3×3, stride-1, pad-1 convolutions: Winograd's minimal filtering
/// F(2×2, 3×3) (Lavin and Gray, 2016). Each 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ)]A over its 4×4 input
/// patch d, so the channel sum becomes 16 independent GEMMs, one per transform point ξ, of 16 multiplies per
/// tile instead of 36: 2.25× fewer FMAs. F(2×2) transforms only add and subtract (B, A) or halve (G), so the
/// result is as accurate as the direct sum; F(4×4, 3×3) would save 4× but loses about 3 digits at 256+
/// channels, which the tests' float64 tolerance rightly refuses.
/// A task owns one NR-tile panel and a group of output channels: it transforms the panel's patches into
/// per-ξ B panels (gathering 16 tiles per vector), runs the Sgemm micro-kernel against the transformed
/// weights (packed once, on first use, like the direct path's panels), then transforms the products back and
/// applies the epilogue. Everything a task touches stays in L2.
/// </summary>
public sealed partial class CpuBackend
{
    private const int WinogradPoints = 16;

    private readonly Workspace _winogradTiles = new();

    [ThreadStatic] private static Workspace? t_winogradInput;
    [ThreadStatic] private static Workspace? t_winogradProducts;

    /// <summary>
    /// Whether Winograd pays: 3×3 same-size convs over even images with enough tiles to fill a narrow panel
    /// (a 4×4 image at batch 1 has 4 tiles and stays direct) and channels enough to amortise the transforms.
    /// </summary>
    private static bool UsesWinograd(in ConvGeometry g) =>
        g.Kernel == 3 && g.Stride == 1 && g.PadBegin == 1 && g.PadEnd == 1 && g.H % 2 == 0 && g.W % 2 == 0
        && g.Cin >= 16 && g.Cout >= 16 && g.N * (g.H / 2) * (g.W / 2) >= Sgemm.NR / 2
        && Avx2.IsSupported && Vector512.IsHardwareAccelerated;

    private unsafe void Conv2dWinograd(in ConvJob job)
    {
        ref readonly var g = ref job.Geometry;
        int tilesPerRow = g.W / 2, tilesPerImage = g.H / 2 * tilesPerRow;
        int tiles = g.N * tilesPerImage;
        // Per tile: where its 4×4 patch starts in the padded input, and its 2×2 output block in y (channel 0).
        int* origins = _winogradTiles.Ints(2 * (long)tiles);
        for (int t = 0; t < tiles; t++)
        {
            int n = t / tilesPerImage, r = t - n * tilesPerImage;
            int ty = r / tilesPerRow, tx = r - ty * tilesPerRow;
            origins[t] = n * g.Cin * g.PlaneSize + 2 * ty * g.Wp + 2 * tx;
            origins[tiles + t] = n * g.Cout * g.Ho * g.Wo + 2 * ty * g.Wo + 2 * tx;
        }
        var w = job.Weights;
        var task = new WinogradJob(job, w.WinogradPointer, origins, tiles);
        var part = ConvPartition.For(tiles, w.MBlocks, Threads);
        For(part.Tasks, i => WinogradTask(task, part, i));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradTask(in WinogradJob wj, in ConvPartition part, int task)
    {
        const int NR = Sgemm.NR;
        ref readonly var job = ref wj.Job;
        int columnTask = task % part.ColumnTasks, group = task / part.ColumnTasks;
        int block0 = group * part.BlocksPerGroup;
        int blocks = Math.Min(job.Weights.MBlocks, block0 + part.BlocksPerGroup) - block0;
        for (int p = 0; p < part.PanelsPerTask && blocks > 0; p++)
        {
            int t0 = (columnTask * part.PanelsPerTask + p) * NR;
            if (t0 < wj.Tiles) WinogradPanel(wj, t0, Math.Min(NR, wj.Tiles - t0), block0, blocks);
        }
    }

    /// <summary>Tiles [t0, t0 + count) (count ≤ NR) for output-channel blocks [block0, block0 + blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradPanel(in WinogradJob wj, int t0, int count, int block0, int blocks)
    {
        const int MR = Sgemm.MR, NR = Sgemm.NR;
        ref readonly var job = ref wj.Job;
        ref readonly var g = ref job.Geometry;

        float* v = (t_winogradInput ??= new()).Floats((long)WinogradPoints * g.Cin * NR);
        for (int lane0 = 0; lane0 < count; lane0 += 16)
            WinogradInputTransform(job.Source, g, wj.Origins + t0 + lane0, Math.Min(16, count - lane0), v + lane0);

        int rows = blocks * MR;
        float* m = (t_winogradProducts ??= new()).Floats((long)WinogradPoints * rows * NR);
        long aBlock = (long)g.Cin * MR;
        bool narrow = count <= NR / 2;
        for (int xi = 0; xi < WinogradPoints; xi++)
        {
            float* vXi = v + (long)xi * g.Cin * NR;
            float* mXi = m + (long)xi * rows * NR;
            for (int k0 = 0; k0 < g.Cin; k0 += ConvKBlock)
            {
                int kc = Math.Min(ConvKBlock, g.Cin - k0);
                float* a = wj.U + (((long)xi * job.Weights.MBlocks + block0) * g.Cin + k0) * MR;
                float* b = vXi + (long)k0 * NR;
                int mb = 0;
                if (narrow)
                {
                    for (; mb + 1 < blocks; mb += 2)
                        Sgemm.MicroKernelNarrow(kc, a + mb * aBlock, a + (mb + 1) * aBlock, MR, b, NR, mXi + (long)mb * MR * NR, NR, k0 > 0);
                }
                for (; mb < blocks; mb++)
                    Sgemm.MicroKernel(kc, a + mb * aBlock, MR, b, NR, mXi + (long)mb * MR * NR, NR, k0 > 0);
            }
        }

        int m1 = Math.Min(g.Cout, (block0 + blocks) * MR);
        for (int co = block0 * MR; co < m1; co++)
        {
            float* products = m + (long)(co - block0 * MR) * NR;
            for (int lane0 = 0; lane0 < count; lane0 += 16)
                WinogradOutputTransform(job, co, products + lane0, (long)rows * NR, wj.Origins + wj.Tiles + t0 + lane0, Math.Min(16, count - lane0));
        }
    }

    /// <summary>
    /// V = Bᵀ d B for up to 16 tiles (one per lane) and every input channel, stored as the 16 ξ panels' rows
    /// v[ξ][ci][lane]. Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]. Lanes past <paramref name="count"/> repeat
    /// the last tile; their columns are computed and never stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradInputTransform(float* source, in ConvGeometry g, int* origins, int count, float* v)
    {
        const int NR = Sgemm.NR;
        Span<int> lanes = stackalloc int[16];
        for (int l = 0; l < 16; l++) lanes[l] = origins[Math.Min(l, count - 1)];
        var lo = Vector256.Create<int>(lanes[..8]);
        var hi = Vector256.Create<int>(lanes[8..]);
        long xiStride = (long)g.Cin * NR;
        int wp = g.Wp;
        for (int ci = 0; ci < g.Cin; ci++)
        {
            float* plane = source + (long)ci * g.PlaneSize;
            // Bᵀ over the patch rows first, column by column: t[a][c] for the four rows a.
            Vector512<float> t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33;
            {
                var d0 = Gather(plane, lo, hi); var d1 = Gather(plane + wp, lo, hi);
                var d2 = Gather(plane + 2 * wp, lo, hi); var d3 = Gather(plane + 3 * wp, lo, hi);
                t00 = d0 - d2; t10 = d1 + d2; t20 = d2 - d1; t30 = d1 - d3;
            }
            {
                var d0 = Gather(plane + 1, lo, hi); var d1 = Gather(plane + wp + 1, lo, hi);
                var d2 = Gather(plane + 2 * wp + 1, lo, hi); var d3 = Gather(plane + 3 * wp + 1, lo, hi);
                t01 = d0 - d2; t11 = d1 + d2; t21 = d2 - d1; t31 = d1 - d3;
            }
            {
                var d0 = Gather(plane + 2, lo, hi); var d1 = Gather(plane + wp + 2, lo, hi);
                var d2 = Gather(plane + 2 * wp + 2, lo, hi); var d3 = Gather(plane + 3 * wp + 2, lo, hi);
                t02 = d0 - d2; t12 = d1 + d2; t22 = d2 - d1; t32 = d1 - d3;
            }
            {
                var d0 = Gather(plane + 3, lo, hi); var d1 = Gather(plane + wp + 3, lo, hi);
                var d2 = Gather(plane + 2 * wp + 3, lo, hi); var d3 = Gather(plane + 3 * wp + 3, lo, hi);
                t03 = d0 - d2; t13 = d1 + d2; t23 = d2 - d1; t33 = d1 - d3;
            }
            // Then along the columns: ξ = 4a + b.
            float* dst = v + (long)ci * NR;
            StoreRow(dst, xiStride, 0, t00, t01, t02, t03);
            StoreRow(dst, xiStride, 4, t10, t11, t12, t13);
            StoreRow(dst, xiStride, 8, t20, t21, t22, t23);
            StoreRow(dst, xiStride, 12, t30, t31, t32, t33);
        }

        static void StoreRow(float* dst, long xiStride, int xi0, Vector512<float> c0, Vector512<float> c1, Vector512<float> c2, Vector512<float> c3)
        {
            (c0 - c2).Store(dst + xi0 * xiStride);
            (c1 + c2).Store(dst + (xi0 + 1) * xiStride);
            (c2 - c1).Store(dst + (xi0 + 2) * xiStride);
            (c1 - c3).Store(dst + (xi0 + 3) * xiStride);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> Gather(float* at, Vector256<int> lo, Vector256<int> hi) =>
        Vector512.Create(Avx2.GatherVector256(at, lo, 4), Avx2.GatherVector256(at, hi, 4));

    /// <summary>
    /// Y = Aᵀ M A for output channel <paramref name="co"/> of up to 16 tiles, Aᵀ = [1 1 1 0; 0 1 −1 −1], then the
    /// epilogue in the direct path's order: + bias, + channel bias, + residual, × scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradOutputTransform(in ConvJob job, int co, float* products, long xiStride, int* outputs, int count)
    {
        ref readonly var g = ref job.Geometry;
        Vector512<float> s00, s01, s02, s03, s10, s11, s12, s13;
        {
            var m0 = Vector512.Load(products); var m1 = Vector512.Load(products + 4 * xiStride);
            var m2 = Vector512.Load(products + 8 * xiStride); var m3 = Vector512.Load(products + 12 * xiStride);
            s00 = m0 + m1 + m2; s10 = m1 - m2 - m3;
        }
        {
            var m0 = Vector512.Load(products + xiStride); var m1 = Vector512.Load(products + 5 * xiStride);
            var m2 = Vector512.Load(products + 9 * xiStride); var m3 = Vector512.Load(products + 13 * xiStride);
            s01 = m0 + m1 + m2; s11 = m1 - m2 - m3;
        }
        {
            var m0 = Vector512.Load(products + 2 * xiStride); var m1 = Vector512.Load(products + 6 * xiStride);
            var m2 = Vector512.Load(products + 10 * xiStride); var m3 = Vector512.Load(products + 14 * xiStride);
            s02 = m0 + m1 + m2; s12 = m1 - m2 - m3;
        }
        {
            var m0 = Vector512.Load(products + 3 * xiStride); var m1 = Vector512.Load(products + 7 * xiStride);
            var m2 = Vector512.Load(products + 11 * xiStride); var m3 = Vector512.Load(products + 15 * xiStride);
            s03 = m0 + m1 + m2; s13 = m1 - m2 - m3;
        }
        var bias = Vector512.Create(job.Weights.Bias[co]);
        Span<float> y = stackalloc float[4 * 16];
        ((s00 + s01 + s02) + bias).CopyTo(y);
        ((s01 - s02 - s03) + bias).CopyTo(y[16..]);
        ((s10 + s11 + s12) + bias).CopyTo(y[32..]);
        ((s11 - s12 - s13) + bias).CopyTo(y[48..]);

        long plane = (long)g.Ho * g.Wo;
        float add = 0f;
        bool hasAdd = job.ChannelBias != null;
        int wo = g.Wo;
        float scale = job.Scale;
        for (int l = 0; l < count; l++)
        {
            long at = outputs[l] + (long)co * plane;
            if (hasAdd) add = job.ChannelBias[at / ((long)g.Cout * plane) * g.Cout + co];
            Finish(job, at, y[l], add, hasAdd, scale);
            Finish(job, at + 1, y[16 + l], add, hasAdd, scale);
            Finish(job, at + wo, y[32 + l], add, hasAdd, scale);
            Finish(job, at + wo + 1, y[48 + l], add, hasAdd, scale);
        }

        static void Finish(in ConvJob job, long at, float v, float add, bool hasAdd, float scale)
        {
            if (hasAdd) v += add;
            if (job.Residual != null) v += job.Residual[at];
            if (scale != 1f) v *= scale;
            job.Y[at] = v;
        }
    }

    private readonly unsafe struct WinogradJob(ConvJob job, float* u, int* origins, int tiles)
    {
        public readonly ConvJob Job = job;
        public readonly float* U = u;
        public readonly int* Origins = origins;
        public readonly int Tiles = tiles;
    }
}
