using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's path for convolutions with at most 2·MR output pixels in all (the U-Net's 4×4 level at batch 1 on
/// AVX-512). The direct path puts pixels on the micro-kernel's NR = 32 columns, so 16 pixels would leave half of
/// every vector empty, and its narrow kernel pays 16 broadcasts for 16 FMAs. Here the product is taken transposed,
///   Yᵀ[pixel, co] = Σ_k patch[k, pixel] · W[co, k],
/// so pixels are the MR broadcast rows and output channels the vector columns, read from weights packed as
/// NR-channel panels (k-major, packed once on first use). Every step is then two vector loads and MR broadcasts
/// for 2·MR FMAs, as on large images. The threads split the channel panels, so each streams its own share of
/// the weights (a small conv's real cost). Each also packs all the patch rows itself, a K block at a time, with
/// a gather per vector of a row straight from the unpadded input (a table of where each pixel's tap lands, zero outside the
/// image): at this size the per-run copies of the direct path, and padding the input first, cost a quarter as much
/// as the arithmetic.
/// </summary>
public sealed partial class CpuBackend
{
    /// <summary>K-block depth: a weight panel block (KC × NR) and the im2col block (KC × 2·MR at most) share a 32 KiB L1.</summary>
    private const int FewPixelsKBlock = 128;

    [ThreadStatic] private static Workspace? t_fewPixelsOutput;

    private static bool UsesFewPixels<T, TV>(in ConvGeometry g) where T : struct, ISimd<TV> where TV : struct => g.Columns <= 2 * T.MR;

    /// <summary>
    /// Runs <paramref name="job"/> (whose Source is the unpadded input) after building its gather table: for tap
    /// r = (ky, kx) and pixel j, gather[r·ld + j] is the offset of x[n, 0, y, x] that the tap reads, or −1 where
    /// that lies in the padding (and for the pixels past the last, which fill the last MR-row block).
    /// </summary>
    private unsafe void Conv2dFewPixels<T, TV>(ConvJob job) where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        int ld = FewPixelsRows(g, T.MR);
        int taps = g.Kernel * g.Kernel;
        int* gather = _convOffsets.Ints((long)taps * ld);
        for (int r = 0; r < taps; r++)
        {
            int ky = r / g.Kernel, kx = r - ky * g.Kernel;
            for (int j = 0; j < ld; j++)
            {
                int n = j / (g.Ho * g.Wo), p = j - n * g.Ho * g.Wo;
                int y = p / g.Wo * g.Stride - g.PadBegin + ky, x = p % g.Wo * g.Stride - g.PadBegin + kx;
                bool inside = j < g.Columns && y >= 0 && y < g.H && x >= 0 && x < g.W;
                gather[r * ld + j] = inside ? (n * g.Cin * g.H + y) * g.W + x : -1;
            }
        }
        var fewPixels = new FewPixelsJob(job, gather);
        ForRanges(job.Weights.ChannelPanels, (panel0, panel1) => FewPixelsTask<T, TV>(fewPixels, panel0, panel1), perThread: 1);
    }

    /// <summary>Pixel rows of the transposed product: the pixels rounded up to whole MR-row blocks (one or two).</summary>
    private static int FewPixelsRows(in ConvGeometry g, int mr) => (g.Columns + mr - 1) / mr * mr;

    /// <summary>Output channels of panels [panel0, panel1) for every pixel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewPixelsTask<T, TV>(in FewPixelsJob fp, int panel0, int panel1) where T : struct, ISimd<TV> where TV : struct
    {
        int MR = T.MR, NR = T.NR;
        ref readonly var job = ref fp.Job;
        ref readonly var g = ref job.Geometry;
        int ld = FewPixelsRows(g, MR);
        int ldc = (panel1 - panel0) * NR;
        float* tile = (t_convTile ??= new()).Floats((long)ld * ldc);
        float* packed = (t_convPanels ??= new()).Floats((long)FewPixelsKBlock * ld);
        float* weights = job.Weights.ChannelPanelPointer;
        for (int k0 = 0; k0 < g.K; k0 += FewPixelsKBlock)
        {
            int kc = Math.Min(FewPixelsKBlock, g.K - k0);
            GatherPatchRows<T, TV>(fp, k0, kc, packed, ld);
            for (int q = panel0; q < panel1; q++)
            {
                float* b = weights + ((long)q * g.K + k0) * NR;
                for (int r = 0; r < ld; r += MR)
                    Sgemm.MicroKernel<T, TV>(kc, packed + r, ld, b, NR, tile + (long)r * ldc + (q - panel0) * NR, ldc, k0 > 0);
            }
        }

        // Back to one row per output channel, the layout the shared epilogue writes from.
        int m0 = panel0 * NR, m1 = Math.Min(g.Cout, panel1 * NR);
        float* byChannel = (t_fewPixelsOutput ??= new()).Floats((long)(m1 - m0) * ld);
        for (int j = 0; j < g.Columns; j++)
        {
            for (int m = 0; m < m1 - m0; m++) byChannel[(long)m * ld + j] = tile[(long)j * ldc + m];
        }
        ConvEpilogue<T, TV>(job, byChannel, ld, m0, m1, 0, g.Columns);
    }

    /// <summary>Patch rows [k0, k0 + kc) into <paramref name="packed"/>, row kk at packed + kk·ld.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void GatherPatchRows<T, TV>(in FewPixelsJob fp, int k0, int kc, float* packed, int ld)
        where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref fp.Job.Geometry;
        int taps = g.Kernel * g.Kernel, plane = g.H * g.W;
        for (int kk = 0; kk < kc; kk++)
        {
            int ci = (k0 + kk) / taps, r = k0 + kk - ci * taps;
            float* src = fp.Job.Source + (long)ci * plane;
            int* at = fp.Gather + r * ld;
            float* dst = packed + kk * ld;
            int j = 0;
            for (; j <= ld - T.Count; j += T.Count) T.Store(T.GatherOrZero(src, at + j), dst + j);
            for (; j < ld; j++) dst[j] = at[j] < 0 ? 0f : src[at[j]];
        }
    }

    private readonly unsafe struct FewPixelsJob(ConvJob job, int* gather)
    {
        public readonly ConvJob Job = job;
        public readonly int* Gather = gather;
    }
}
