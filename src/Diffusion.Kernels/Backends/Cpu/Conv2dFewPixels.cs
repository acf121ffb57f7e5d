using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d's path for convolutions with at most 16 output pixels in all (the U-Net's 4×4 level at batch 1). The
/// direct path puts pixels on the micro-kernel's NR = 32 columns, so 16 pixels would leave half of every vector
/// empty, and its narrow kernel pays 16 broadcasts for 16 FMAs. Here the product is taken transposed,
///   Yᵀ[pixel, co] = Σ_k patch[k, pixel] · W[co, k],
/// so pixels are the MR = 8 broadcast rows and output channels the vector columns, read from weights packed as
/// 32-channel panels (k-major, packed once on first use). Every step is then two vector loads and eight broadcasts
/// for sixteen FMAs, as on large images. The threads split the channel panels, so each streams its own share of
/// the weights (a small conv's real cost). Each also packs all the patch rows itself, a K block at a time, with
/// two gathers per row straight from the unpadded input (a table of where each pixel's tap lands, zero outside the
/// image): at this size the per-run copies of the direct path, and padding the input first, cost a quarter as much
/// as the arithmetic.
/// </summary>
public sealed partial class CpuBackend
{
    /// <summary>K-block depth: a weight panel block (KC × 32) and the im2col block (KC × 16) share a 32 KiB L1.</summary>
    private const int FewPixelsKBlock = 128;

    [ThreadStatic] private static Workspace? t_fewPixelsOutput;

    private static bool UsesFewPixels(in ConvGeometry g) => g.Columns <= 2 * Sgemm.MR;

    /// <summary>
    /// Runs <paramref name="job"/> (whose Source is the unpadded input) after building its gather table: for tap
    /// r = (ky, kx) and pixel j, gather[r·ld + j] is the offset of x[n, 0, y, x] that the tap reads, or −1 where
    /// that lies in the padding (and for the pixels past the last, which fill the last 8-row block).
    /// </summary>
    private unsafe void Conv2dFewPixels(ConvJob job)
    {
        ref readonly var g = ref job.Geometry;
        int ld = FewPixelsRows(g);
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
        ForRanges(job.Weights.ChannelPanels, (panel0, panel1) => FewPixelsTask(fewPixels, panel0, panel1), perThread: 1);
    }

    /// <summary>Pixel rows of the transposed product: the pixels rounded up to whole MR-row blocks (8 or 16).</summary>
    private static int FewPixelsRows(in ConvGeometry g) => (g.Columns + Sgemm.MR - 1) / Sgemm.MR * Sgemm.MR;

    /// <summary>Output channels of panels [panel0, panel1) for every pixel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewPixelsTask(in FewPixelsJob fp, int panel0, int panel1)
    {
        const int MR = Sgemm.MR, NR = Sgemm.NR;
        ref readonly var job = ref fp.Job;
        ref readonly var g = ref job.Geometry;
        int ld = FewPixelsRows(g);
        int ldc = (panel1 - panel0) * NR;
        float* tile = (t_convTile ??= new()).Floats((long)ld * ldc);
        float* packed = (t_convPanels ??= new()).Floats((long)FewPixelsKBlock * ld);
        float* weights = job.Weights.ChannelPanelPointer;
        for (int k0 = 0; k0 < g.K; k0 += FewPixelsKBlock)
        {
            int kc = Math.Min(FewPixelsKBlock, g.K - k0);
            GatherPatchRows(fp, k0, kc, packed, ld);
            for (int q = panel0; q < panel1; q++)
            {
                float* b = weights + ((long)q * g.K + k0) * NR;
                for (int r = 0; r < ld; r += MR)
                    Sgemm.MicroKernel(kc, packed + r, ld, b, NR, tile + (long)r * ldc + (q - panel0) * NR, ldc, k0 > 0);
            }
        }

        // Back to one row per output channel, the layout the shared epilogue writes from.
        int m0 = panel0 * NR, m1 = Math.Min(g.Cout, panel1 * NR);
        float* byChannel = (t_fewPixelsOutput ??= new()).Floats((long)(m1 - m0) * ld);
        for (int j = 0; j < g.Columns; j++)
        {
            for (int m = 0; m < m1 - m0; m++) byChannel[(long)m * ld + j] = tile[(long)j * ldc + m];
        }
        ConvEpilogue(job, byChannel, ld, m0, m1, 0, g.Columns);
    }

    /// <summary>Patch rows [k0, k0 + kc) into <paramref name="packed"/>, row kk at packed + kk·ld.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void GatherPatchRows(in FewPixelsJob fp, int k0, int kc, float* packed, int ld)
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
            if (Avx2.IsSupported)
            {
                for (; j < ld; j += 8)
                {
                    var index = Vector256.Load(at + j);
                    var inside = Vector256.GreaterThan(index, Vector256.Create(-1)).AsSingle();
                    Avx2.GatherMaskVector256(Vector256<float>.Zero, src, Vector256.Max(index, Vector256<int>.Zero), inside, 4).Store(dst + j);
                }
            }
            for (; j < ld; j++) dst[j] = at[j] < 0 ? 0f : src[at[j]];
        }
    }

    private readonly unsafe struct FewPixelsJob(ConvJob job, int* gather)
    {
        public readonly ConvJob Job = job;
        public readonly int* Gather = gather;
    }
}
