using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's fast path for the U-Net's 3×3, stride-1, pad-1 convolutions: Winograd's minimal filtering
/// F(2×2, 3×3) (Lavin and Gray, 2016). Each 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over its 4×4 input
/// patch d, so the channel sum becomes 16 independent GEMMs, one per transform point ξ, of 16 multiplies per
/// tile instead of 36: 2.25× fewer FMAs. F(2×2) transforms only add and subtract (B, A) or halve (G), so the
/// result is as accurate as the direct sum; F(4×4, 3×3) would save 4× but is about ten times less accurate at
/// 256+ channels, past the tests' float64 tolerance.
/// A task owns one or more NR-tile panels and a group of output channels. Per panel it transforms the patches
/// into per-ξ B panels (one tile per vector lane), runs the Sgemm micro-kernel against the transformed weights
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
    /// transforms and at least 16 tiles (an 8×8 image; a narrow AVX-512 panel). A 4×4 image at batch 1 has 4 tiles:
    /// the GEMMs would be mostly padding, and the conv is bound by reading its weights, which U makes 16/9 larger.
    /// </summary>
    private static bool UsesWinograd(in ConvGeometry g) =>
        g.Kernel == 3 && g.Stride == 1 && g.PadBegin == 1 && g.PadEnd == 1 && g.H % 2 == 0 && g.W % 2 == 0
        && g.Cin >= 16 && g.Cout >= 16 && g.N * (g.H / 2) * (g.W / 2) >= 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void Conv2dWinograd<T, TV>(in ConvJob job) where T : struct, ISimd<TV> where TV : struct
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
        var part = ConvPartition.For(tiles, w.MBlocks, Threads, T.NR);
        For(part.Tasks, i => WinogradTask<T, TV>(task, part, i));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradTask<T, TV>(in WinogradJob wj, in ConvPartition part, int task) where T : struct, ISimd<TV> where TV : struct
    {
        int NR = T.NR;
        ref readonly var job = ref wj.Job;
        int columnTask = task % part.ColumnTasks, group = task / part.ColumnTasks;
        int block0 = group * part.BlocksPerGroup;
        int blocks = Math.Min(job.Weights.MBlocks, block0 + part.BlocksPerGroup) - block0;
        for (int p = 0; p < part.PanelsPerTask && blocks > 0; p++)
        {
            int t0 = (columnTask * part.PanelsPerTask + p) * NR;
            if (t0 < wj.Tiles) WinogradPanel<T, TV>(wj, t0, Math.Min(NR, wj.Tiles - t0), block0, blocks);
        }
    }

    /// <summary>Tiles [t0, t0 + count) (count ≤ NR) for output-channel blocks [block0, block0 + blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradPanel<T, TV>(in WinogradJob wj, int t0, int count, int block0, int blocks)
        where T : struct, ISimd<TV> where TV : struct
    {
        int MR = T.MR, NR = T.NR, n = T.Count;
        ref readonly var job = ref wj.Job;
        ref readonly var g = ref job.Geometry;

        long vStride = PointStride((long)g.Cin * NR);
        float* v = (t_winogradInput ??= new()).Floats(WinogradPoints * vStride);
        for (int lane0 = 0; lane0 < count; lane0 += n)
            WinogradInputTransform<T, TV>(job.Source, g, wj.Origins + t0 + lane0, Math.Min(n, count - lane0), v + lane0, vStride);

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
                        Sgemm.MicroKernelNarrow<T, TV>(kc, a + mb * aBlock, a + (mb + 1) * aBlock, MR, b, NR, mXi + (long)mb * MR * NR, NR, k0 > 0);
                }
                for (; mb < blocks; mb++)
                    Sgemm.MicroKernel<T, TV>(kc, a + mb * aBlock, MR, b, NR, mXi + (long)mb * MR * NR, NR, k0 > 0);
            }
        }

        int m1 = Math.Min(g.Cout, (block0 + blocks) * MR);
        for (int co = block0 * MR; co < m1; co++)
        {
            float* products = m + (long)(co - block0 * MR) * NR;
            for (int lane0 = 0; lane0 < count; lane0 += n)
                WinogradOutputTransform<T, TV>(job, co, products + lane0, mStride, wj.Origins + wj.Tiles + t0 + lane0, Math.Min(n, count - lane0));
        }
    }

    /// <summary>
    /// V = Bᵀ d B for up to a vector of tiles (one per lane) and every input channel, stored as the 16 ξ panels' rows
    /// v[ξ][ci][lane]. Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]. When the lanes are two runs of half a vector
    /// of tiles along tile rows (on AVX-512, images 16 or more pixels wide), each patch column is two contiguous
    /// loads and one even/odd permute; otherwise it is gathered. Lanes past <paramref name="count"/> repeat the last
    /// tile; their columns are computed and never stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradInputTransform<T, TV>(float* source, in ConvGeometry g, int* origins, int count, float* v, long xiStride)
        where T : struct, ISimd<TV> where TV : struct
    {
        int n = T.Count;
        if (count == n && g.W / 2 % (n / 2) == 0)
        {
            WinogradInputTransform<T, TV, TileRuns<T, TV>>(new TileRuns<T, TV>(source + origins[0], source + origins[n / 2]), g, v, xiStride);
            return;
        }
        int* lanes = stackalloc int[n];
        for (int l = 0; l < n; l++) lanes[l] = origins[Math.Min(l, count - 1)];
        WinogradInputTransform<T, TV, TileGather<T, TV>>(new TileGather<T, TV>(source, lanes), g, v, xiStride);
    }

    /// <summary>
    /// The distance between two points' panels, padded off multiples of 4 KiB: the transforms touch all 16
    /// points at once, and 16 addresses 4 KiB apart share one L1 set (12 ways), evicting each other.
    /// </summary>
    private static long PointStride(long floats) => floats % 1024 == 0 ? floats + 16 : floats;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradInputTransform<T, TV, TPatch>(TPatch patch, in ConvGeometry g, float* v, long xiStride)
        where T : struct, ISimd<TV> where TV : struct where TPatch : struct, IPatchColumns<TV>
    {
        int wp = g.Wp;
        for (int ci = 0; ci < g.Cin; ci++)
        {
            long plane = (long)ci * g.PlaneSize;
            // Bᵀ over the patch rows first, column by column: t[a][c] for the four rows a.
            TV t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23, t30, t31, t32, t33;
            {
                var d0 = patch.Column(plane, 0); var d1 = patch.Column(plane + wp, 0);
                var d2 = patch.Column(plane + 2 * wp, 0); var d3 = patch.Column(plane + 3 * wp, 0);
                t00 = T.Subtract(d0, d2); t10 = T.Add(d1, d2); t20 = T.Subtract(d2, d1); t30 = T.Subtract(d1, d3);
            }
            {
                var d0 = patch.Column(plane, 1); var d1 = patch.Column(plane + wp, 1);
                var d2 = patch.Column(plane + 2 * wp, 1); var d3 = patch.Column(plane + 3 * wp, 1);
                t01 = T.Subtract(d0, d2); t11 = T.Add(d1, d2); t21 = T.Subtract(d2, d1); t31 = T.Subtract(d1, d3);
            }
            {
                var d0 = patch.Column(plane, 2); var d1 = patch.Column(plane + wp, 2);
                var d2 = patch.Column(plane + 2 * wp, 2); var d3 = patch.Column(plane + 3 * wp, 2);
                t02 = T.Subtract(d0, d2); t12 = T.Add(d1, d2); t22 = T.Subtract(d2, d1); t32 = T.Subtract(d1, d3);
            }
            {
                var d0 = patch.Column(plane, 3); var d1 = patch.Column(plane + wp, 3);
                var d2 = patch.Column(plane + 2 * wp, 3); var d3 = patch.Column(plane + 3 * wp, 3);
                t03 = T.Subtract(d0, d2); t13 = T.Add(d1, d2); t23 = T.Subtract(d2, d1); t33 = T.Subtract(d1, d3);
            }
            // Then along the columns: ξ = 4a + b.
            float* dst = v + (long)ci * T.NR;
            StoreRow(dst, xiStride, 0, t00, t01, t02, t03);
            StoreRow(dst, xiStride, 4, t10, t11, t12, t13);
            StoreRow(dst, xiStride, 8, t20, t21, t22, t23);
            StoreRow(dst, xiStride, 12, t30, t31, t32, t33);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void StoreRow(float* dst, long xiStride, int xi0, TV c0, TV c1, TV c2, TV c3)
        {
            T.Store(T.Subtract(c0, c2), dst + xi0 * xiStride);
            T.Store(T.Add(c1, c2), dst + (xi0 + 1) * xiStride);
            T.Store(T.Subtract(c2, c1), dst + (xi0 + 2) * xiStride);
            T.Store(T.Subtract(c1, c3), dst + (xi0 + 3) * xiStride);
        }
    }

    /// <summary>Column c of row r of a vector of tiles' 4×4 patches, one tile per lane; offset = r's row within the plane.</summary>
    private interface IPatchColumns<TV> where TV : struct
    {
        TV Column(long offset, int c);
    }

    /// <summary>
    /// The lower and upper half of the lanes are each half a vector of consecutive tiles of one tile row: tile l's
    /// column c is element 2l + c of its run, so a vector loaded at c & 2 holds every column c of half the lanes.
    /// </summary>
    private readonly unsafe struct TileRuns<T, TV>(float* first, float* second) : IPatchColumns<TV> where T : struct, ISimd<TV> where TV : struct
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Column(long offset, int c)
        {
            var a = T.Load(first + offset + (c & 2));
            var b = T.Load(second + offset + (c & 2));
            return (c & 1) == 0 ? T.Evens(a, b) : T.Odds(a, b);
        }
    }

    /// <summary>Any tiles: a gather per column (two 8-lane gathers on AVX-512, scalar loads on 128-bit).</summary>
    private readonly unsafe struct TileGather<T, TV>(float* source, int* lanes) : IPatchColumns<TV> where T : struct, ISimd<TV> where TV : struct
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Column(long offset, int c) => T.Gather(source + offset + c, lanes);
    }

    /// <summary>
    /// Y = Aᵀ M A for output channel <paramref name="co"/> of up to a vector of tiles, Aᵀ = [1 1 1 0; 0 1 −1 −1], then the
    /// epilogue in the direct path's order: + bias, + channel bias, + residual, × scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradOutputTransform<T, TV>(in ConvJob job, int co, float* products, long xiStride, int* outputs, int count)
        where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        int n = T.Count;
        TV s00, s01, s02, s03, s10, s11, s12, s13;
        {
            var m0 = T.Load(products); var m1 = T.Load(products + 4 * xiStride);
            var m2 = T.Load(products + 8 * xiStride); var m3 = T.Load(products + 12 * xiStride);
            s00 = T.Add(T.Add(m0, m1), m2); s10 = T.Subtract(T.Subtract(m1, m2), m3);
        }
        {
            var m0 = T.Load(products + xiStride); var m1 = T.Load(products + 5 * xiStride);
            var m2 = T.Load(products + 9 * xiStride); var m3 = T.Load(products + 13 * xiStride);
            s01 = T.Add(T.Add(m0, m1), m2); s11 = T.Subtract(T.Subtract(m1, m2), m3);
        }
        {
            var m0 = T.Load(products + 2 * xiStride); var m1 = T.Load(products + 6 * xiStride);
            var m2 = T.Load(products + 10 * xiStride); var m3 = T.Load(products + 14 * xiStride);
            s02 = T.Add(T.Add(m0, m1), m2); s12 = T.Subtract(T.Subtract(m1, m2), m3);
        }
        {
            var m0 = T.Load(products + 3 * xiStride); var m1 = T.Load(products + 7 * xiStride);
            var m2 = T.Load(products + 11 * xiStride); var m3 = T.Load(products + 15 * xiStride);
            s03 = T.Add(T.Add(m0, m1), m2); s13 = T.Subtract(T.Subtract(m1, m2), m3);
        }
        var bias = T.Broadcast(job.Weights.Bias[co]);
        var y00 = T.Add(T.Add(T.Add(s00, s01), s02), bias);
        var y01 = T.Add(T.Subtract(T.Subtract(s01, s02), s03), bias);
        var y10 = T.Add(T.Add(T.Add(s10, s11), s12), bias);
        var y11 = T.Add(T.Subtract(T.Subtract(s11, s12), s13), bias);
        long plane = (long)g.Ho * g.Wo;
        if (count == n && g.Wo / 2 % (n / 2) == 0)
        {
            // Two runs of half a vector of tiles along tile rows: interleaving a tile row's left and right outputs
            // gives a vector of contiguous pixels of an output row per run.
            long first = outputs[0] + co * plane, second = outputs[n / 2] + co * plane;
            FinishRun(job, first, T.InterleaveLower(y00, y01), co);
            FinishRun(job, second, T.InterleaveUpper(y00, y01), co);
            FinishRun(job, first + g.Wo, T.InterleaveLower(y10, y11), co);
            FinishRun(job, second + g.Wo, T.InterleaveUpper(y10, y11), co);
            return;
        }
        float* y = stackalloc float[4 * n];
        T.Store(y00, y);
        T.Store(y01, y + n);
        T.Store(y10, y + 2 * n);
        T.Store(y11, y + 3 * n);

        float add = 0f;
        bool hasAdd = job.ChannelBias != null;
        int wo = g.Wo;
        float scale = job.Scale;
        for (int l = 0; l < count; l++)
        {
            long at = outputs[l] + (long)co * plane;
            if (hasAdd) add = job.ChannelBias[at / ((long)g.Cout * plane) * g.Cout + co];
            Finish(job, at, y[l], add, hasAdd, scale);
            Finish(job, at + 1, y[n + l], add, hasAdd, scale);
            Finish(job, at + wo, y[2 * n + l], add, hasAdd, scale);
            Finish(job, at + wo + 1, y[3 * n + l], add, hasAdd, scale);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void FinishRun(in ConvJob job, long at, TV v, int co)
        {
            ref readonly var g = ref job.Geometry;
            if (job.ChannelBias != null) v = T.Add(v, T.Broadcast(job.ChannelBias[at / ((long)g.Cout * g.Ho * g.Wo) * g.Cout + co]));
            if (job.Residual != null) v = T.Add(v, T.Load(job.Residual + at));
            if (job.Scale != 1f) v = T.Multiply(v, T.Broadcast(job.Scale));
            T.Store(v, job.Y + at);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
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
