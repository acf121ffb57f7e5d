using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's fast path for the U-Net's 3×3, stride-1, pad-1 convolutions: Winograd's minimal filtering F(m×m, 3×3)
/// (Lavin and Gray, 2016). Each m×m output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over its (m+2)×(m+2) input patch d, so
/// the channel sum becomes (m+2)² independent GEMMs, one per transform point ξ. Two versions:
/// <list type="bullet">
/// <item>F(4×4, 3×3), <see cref="WinogradF4{T, TV}"/>, where the image has at least 16 4×4 tiles: 36 multiplies per
/// 16 outputs instead of 144, 4× fewer FMAs. Its points 0, ±1, ½, −2 (and ∞) are the most accurate set of the
/// few tried: with float32 transforms it stays within 5e-6 of the float64 sum at 256–512 channels (±2 gives 1.6e-5,
/// past the tests' 1e-5); the direct sum and F(2×2) stay below 1e-6.</item>
/// <item>F(2×2, 3×3), <see cref="WinogradF2{T, TV}"/>, on images with 16 or more 2×2 tiles but too few 4×4 ones
/// (8×8 at batch 1): 16 multiplies per 4 outputs instead of 36. Its transforms only add, subtract or halve.</item>
/// </list>
/// A task owns one or more NR-tile panels and a group of output channels. Per panel and K block of input channels
/// it transforms the patches into per-ξ B panels (one tile per vector lane) and runs the Sgemm micro-kernel against
/// the transformed weights (packed once, on first use, like the direct path's panels), then transforms the products
/// back and applies the epilogue; a panel's transformed inputs and products stay in L2.
/// </summary>
public sealed partial class CpuBackend
{
    private readonly Workspace _winogradTiles = new();

    [ThreadStatic] private static Workspace? t_winogradInput;
    [ThreadStatic] private static Workspace? t_winogradProducts;

    /// <summary>
    /// The Winograd tile edge m for a conv (4 or 2), or 0 where Winograd does not pay: it needs a 3×3 same-size conv
    /// with channels enough to amortise the transforms and at least 16 tiles (a narrow AVX-512 panel). A 4×4 image
    /// at batch 1 has 4 2×2 tiles: the GEMMs would be mostly padding, and the conv is bound by reading its weights,
    /// which U makes 16/9 larger.
    /// </summary>
    private static int WinogradTile(in ConvGeometry g)
    {
        if (g.Kernel != 3 || g.Stride != 1 || g.PadBegin != 1 || g.PadEnd != 1 || g.Cin < 16 || g.Cout < 16) return 0;
        if (g.H % 4 == 0 && g.W % 4 == 0 && g.N * (g.H / 4) * (g.W / 4) >= 16) return 4;
        return g.H % 2 == 0 && g.W % 2 == 0 && g.N * (g.H / 2) * (g.W / 2) >= 16 ? 2 : 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void Conv2dWinograd<T, TV, TTile>(in ConvJob job)
        where T : struct, ISimd<TV> where TV : struct where TTile : struct, IWinogradTile<T, TV>
    {
        ref readonly var g = ref job.Geometry;
        int m = TTile.Size, tilesPerRow = g.W / m, tilesPerImage = g.H / m * tilesPerRow;
        int tiles = g.N * tilesPerImage;
        // Per tile: where its patch starts in the padded input, and its m×m output block in y (channel 0).
        int* origins = _winogradTiles.Ints(2 * (long)tiles);
        for (int t = 0; t < tiles; t++)
        {
            int n = t / tilesPerImage, r = t - n * tilesPerImage;
            int ty = r / tilesPerRow, tx = r - ty * tilesPerRow;
            origins[t] = n * g.Cin * g.PlaneSize + m * (ty * g.Wp + tx);
            origins[tiles + t] = n * g.Cout * g.Ho * g.Wo + m * (ty * g.Wo + tx);
        }
        var w = job.Weights;
        var task = new WinogradJob(job, TTile.Weights(w), origins, tiles);
        var part = ConvPartition.For(tiles, w.MBlocks, Threads, T.NR);
        For(part.Tasks, i => WinogradTask<T, TV, TTile>(task, part, i));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradTask<T, TV, TTile>(in WinogradJob wj, in ConvPartition part, int task)
        where T : struct, ISimd<TV> where TV : struct where TTile : struct, IWinogradTile<T, TV>
    {
        int NR = T.NR;
        ref readonly var job = ref wj.Job;
        int columnTask = task % part.ColumnTasks, group = task / part.ColumnTasks;
        int block0 = group * part.BlocksPerGroup;
        int blocks = Math.Min(job.Weights.MBlocks, block0 + part.BlocksPerGroup) - block0;
        for (int p = 0; p < part.PanelsPerTask && blocks > 0; p++)
        {
            int t0 = (columnTask * part.PanelsPerTask + p) * NR;
            if (t0 < wj.Tiles) WinogradPanel<T, TV, TTile>(wj, t0, Math.Min(NR, wj.Tiles - t0), block0, blocks);
        }
    }

    /// <summary>Tiles [t0, t0 + count) (count ≤ NR) for output-channel blocks [block0, block0 + blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WinogradPanel<T, TV, TTile>(in WinogradJob wj, int t0, int count, int block0, int blocks)
        where T : struct, ISimd<TV> where TV : struct where TTile : struct, IWinogradTile<T, TV>
    {
        int MR = T.MR, NR = T.NR, n = T.Count, points = (TTile.Size + 2) * (TTile.Size + 2);
        ref readonly var job = ref wj.Job;
        ref readonly var g = ref job.Geometry;

        long vStride = PointStride((long)Math.Min(g.Cin, ConvKBlock) * NR);
        float* v = (t_winogradInput ??= new()).Floats(points * vStride);
        int rows = blocks * MR;
        long mStride = PointStride((long)rows * NR);
        float* m = (t_winogradProducts ??= new()).Floats(points * mStride);
        long aBlock = (long)g.Cin * MR;
        bool narrow = count <= NR / 2;
        for (int k0 = 0; k0 < g.Cin; k0 += ConvKBlock)
        {
            // A K block's inputs are transformed just before their GEMMs: 36 points × 256 channels × NR floats
            // (1.2 MB on AVX-512) at most, where the whole depth of a 512-channel conv would spill L2.
            int kc = Math.Min(ConvKBlock, g.Cin - k0);
            for (int lane0 = 0; lane0 < count; lane0 += n)
                WinogradTransformInput<T, TV, TTile>(job.Source, g, k0, kc, wj.Origins + t0 + lane0, Math.Min(n, count - lane0), v + lane0, vStride);
            for (int xi = 0; xi < points; xi++)
            {
                float* a = wj.U + (((long)xi * job.Weights.MBlocks + block0) * g.Cin + k0) * MR;
                float* b = v + xi * vStride;
                float* mXi = m + xi * mStride;
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
                TTile.TransformOutput(job, co, products + lane0, mStride, wj.Origins + wj.Tiles + t0 + lane0, Math.Min(n, count - lane0));
        }
    }

        /// <summary>
    /// The distance between two points' panels, padded off multiples of 4 KiB: the transforms touch all the
    /// points at once, and 16 or more addresses 4 KiB apart share one L1 set (12 ways), evicting each other.
    /// </summary>
    private static long PointStride(long floats) => floats % 1024 == 0 ? floats + 16 : floats;

    private readonly unsafe struct WinogradJob(ConvJob job, float* u, int* origins, int tiles)
    {
        public readonly ConvJob Job = job;
        public readonly float* U = u;
        public readonly int* Origins = origins;
        public readonly int Tiles = tiles;
    }
}
