using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's fast path for the U-Net's 3×3, stride-1, pad-1 convolutions: Winograd's minimal filtering
/// F(2×2, 3×3) (Lavin and Gray, 2016). Each 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over its 4×4 input
/// patch d, so the channel sum becomes 16 independent GEMMs, one per transform point ξ, of 16 multiplies per
/// tile instead of 36: 2.25× fewer FMAs. F(2×2) transforms only add and subtract (B, A) or halve (G), so the
/// result is as accurate as the direct sum; F(4×4, 3×3) would save 4× but is about ten times less accurate at
/// 256+ channels, past the tests' float64 tolerance.
/// A task owns one or more NR-tile panels and a group of output channels. Per panel it transforms the patches
/// into per-ξ B panels (16 tiles per vector), runs the Sgemm micro-kernel against the transformed weights
/// (packed once, on first use, like the direct path's panels), then transforms the products back and applies
/// the epilogue; a panel's transformed inputs and products (16 × channels × NR floats each) stay in L2.
/// </summary>
public sealed partial class CpuBackend
{
    private const int WinogradPoints = 16;

    private readonly Workspace _winogradTiles = new();

    [ThreadStatic] private static Workspace? t_winogradInput;
    [ThreadStatic] private static Workspace? t_winogradProducts;

    /// <summary>
    /// Whether Winograd pays: 3×3 same-size convs over even images with channels enough to amortise the
    /// transforms and at least a narrow panel of 16 tiles (an 8×8 image). A 4×4 image at batch 1 has 4 tiles: the
    /// GEMMs would be mostly padding, and the conv is bound by reading its weights, which U makes 16/9 larger.
    /// </summary>
    private static bool UsesWinograd(in ConvGeometry g) =>
        g.Kernel == 3 && g.Stride == 1 && g.PadBegin == 1 && g.PadEnd == 1 && g.H % 2 == 0 && g.W % 2 == 0
        && g.Cin >= 16 && g.Cout >= 16 && g.N * (g.H / 2) * (g.W / 2) >= Sgemm.NR / 2
        && Avx2.IsSupported && Vector512.IsHardwareAccelerated;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

        long vStride = PointStride((long)g.Cin * NR);
        float* v = (t_winogradInput ??= new()).Floats(WinogradPoints * vStride);
        for (int lane0 = 0; lane0 < count; lane0 += 16)
            WinogradInputTransform(job.Source, g, wj.Origins + t0 + lane0, Math.Min(16, count - lane0), v + lane0, vStride);

        int rows = blocks * MR;
        long mStride = PointStride((long)rows * NR);
        float* m = (t_winogradProducts ??= new()).Floats(WinogradPoints * mStride);
        long aBlock = (long)g.Cin * MR;
        bool narrow = count <= NR / 2;
        for (int xi = 0; xi < WinogradPoints; xi++)
        {
            float* vXi = v + xi * vStride;
            float* mXi = m + xi * mStride;
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
                WinogradOutputTransform(job, co, products + lane0, mStride, wj.Origins + wj.Tiles + t0 + lane0, Math.Min(16, count - lane0));
        }
    }

    /// <summary>
    /// V = Bᵀ d B for up to 16 tiles (one per lane) and every input channel, stored as the 16 ξ panels' rows
    /// v[ξ][ci][lane]. Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]. When the lanes are two runs of 8 tiles
    /// along tile rows (images 16 or more pixels wide), each patch column is two contiguous loads and one
    /// even/odd permute; otherwise it is gathered. Lanes past <paramref name="count"/> repeat the last tile;
    /// their columns are computed and never stored.
    /// </summary>
    private static unsafe void WinogradInputTransform(float* source, in ConvGeometry g, int* origins, int count, float* v, long xiStride)
    {
        if (count == 16 && g.W / 2 % 8 == 0)
        {
            WinogradInputTransform(new TileRuns(source + origins[0], source + origins[8]), g, v, xiStride);
            return;
        }
        Span<int> lanes = stackalloc int[16];
        for (int l = 0; l < 16; l++) lanes[l] = origins[Math.Min(l, count - 1)];
        WinogradInputTransform(new TileGather(source, Vector256.Create<int>(lanes[..8]), Vector256.Create<int>(lanes[8..])), g, v, xiStride);
    }

    /// <summary>
    /// The distance between two points' panels, padded off multiples of 4 KiB: the transforms touch all 16
    /// points at once, and 16 addresses 4 KiB apart share one L1 set (12 ways), evicting each other.
    /// </summary>
    private static long PointStride(long floats) => floats % 1024 == 0 ? floats + 16 : floats;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradInputTransform<TPatch>(TPatch patch, in ConvGeometry g, float* v, long xiStride) where TPatch : struct, IPatchColumns
    {
        int wp = g.Wp;
        for (int ci = 0; ci < g.Cin; ci++)
        {
            long plane = (long)ci * g.PlaneSize;
            // Bᵀ over the patch rows first, column by column: t[a][c] for the four rows a.
            Vector512<float> t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33;
            {
                var d0 = patch.Column(plane, 0); var d1 = patch.Column(plane + wp, 0);
                var d2 = patch.Column(plane + 2 * wp, 0); var d3 = patch.Column(plane + 3 * wp, 0);
                t00 = d0 - d2; t10 = d1 + d2; t20 = d2 - d1; t30 = d1 - d3;
            }
            {
                var d0 = patch.Column(plane, 1); var d1 = patch.Column(plane + wp, 1);
                var d2 = patch.Column(plane + 2 * wp, 1); var d3 = patch.Column(plane + 3 * wp, 1);
                t01 = d0 - d2; t11 = d1 + d2; t21 = d2 - d1; t31 = d1 - d3;
            }
            {
                var d0 = patch.Column(plane, 2); var d1 = patch.Column(plane + wp, 2);
                var d2 = patch.Column(plane + 2 * wp, 2); var d3 = patch.Column(plane + 3 * wp, 2);
                t02 = d0 - d2; t12 = d1 + d2; t22 = d2 - d1; t32 = d1 - d3;
            }
            {
                var d0 = patch.Column(plane, 3); var d1 = patch.Column(plane + wp, 3);
                var d2 = patch.Column(plane + 2 * wp, 3); var d3 = patch.Column(plane + 3 * wp, 3);
                t03 = d0 - d2; t13 = d1 + d2; t23 = d2 - d1; t33 = d1 - d3;
            }
            // Then along the columns: ξ = 4a + b.
            float* dst = v + (long)ci * Sgemm.NR;
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

    /// <summary>Column c of row r of 16 tiles' 4×4 patches, one tile per lane; offset = r's row within the plane.</summary>
    private interface IPatchColumns
    {
        Vector512<float> Column(long offset, int c);
    }

    /// <summary>Lanes 0–7 and 8–15 are each 8 consecutive tiles of one tile row: tile l's column c is element 2l + c.</summary>
    private readonly unsafe struct TileRuns(float* first, float* second) : IPatchColumns
    {
        private static readonly Vector512<int> Evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        private static readonly Vector512<int> Odds = Evens + Vector512<int>.One;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Column(long offset, int c) =>
            Avx512F.PermuteVar16x32x2(Vector512.Load(first + offset + (c & 2)), (c & 1) == 0 ? Evens : Odds, Vector512.Load(second + offset + (c & 2)));
    }

    /// <summary>Any 16 tiles: two 8-lane gathers per column.</summary>
    private readonly unsafe struct TileGather(float* source, Vector256<int> lo, Vector256<int> hi) : IPatchColumns
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector512<float> Column(long offset, int c) =>
            Vector512.Create(Avx2.GatherVector256(source + offset + c, lo, 4), Avx2.GatherVector256(source + offset + c, hi, 4));
    }

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
        var y00 = (s00 + s01 + s02) + bias;
        var y01 = (s01 - s02 - s03) + bias;
        var y10 = (s10 + s11 + s12) + bias;
        var y11 = (s11 - s12 - s13) + bias;
        long plane = (long)g.Ho * g.Wo;
        if (count == 16 && g.Wo / 2 % 8 == 0)
        {
            // Two runs of 8 tiles along tile rows: interleaving a tile row's left and right outputs gives 16
            // contiguous pixels of an output row per run.
            var left = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            var right = left + Vector512.Create(8);
            long first = outputs[0] + co * plane, second = outputs[8] + co * plane;
            FinishRun(job, first, Avx512F.PermuteVar16x32x2(y00, left, y01), co);
            FinishRun(job, second, Avx512F.PermuteVar16x32x2(y00, right, y01), co);
            FinishRun(job, first + g.Wo, Avx512F.PermuteVar16x32x2(y10, left, y11), co);
            FinishRun(job, second + g.Wo, Avx512F.PermuteVar16x32x2(y10, right, y11), co);
            return;
        }
        Span<float> y = stackalloc float[4 * 16];
        y00.CopyTo(y);
        y01.CopyTo(y[16..]);
        y10.CopyTo(y[32..]);
        y11.CopyTo(y[48..]);

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

        static void FinishRun(in ConvJob job, long at, Vector512<float> v, int co)
        {
            ref readonly var g = ref job.Geometry;
            if (job.ChannelBias != null) v += Vector512.Create(job.ChannelBias[at / ((long)g.Cout * g.Ho * g.Wo) * g.Cout + co]);
            if (job.Residual != null) v += Vector512.Load(job.Residual + at);
            if (job.Scale != 1f) v *= Vector512.Create(job.Scale);
            v.Store(job.Y + at);
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
