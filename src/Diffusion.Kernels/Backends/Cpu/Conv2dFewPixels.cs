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
/// for 2·MR FMAs, as on large images. The broadcasts read the padded input where it lies
/// (<see cref="Sgemm.MicroKernelIndirect"/>: a pixel's window origin plus a tap's offset), so no patch matrix is
/// built: at this size, building it (gathers, or the direct path's short runs) cost a fifth of the conv. The
/// threads split the channel panels, so each streams its own share of the weights (a small conv's real cost).
/// </summary>
public sealed partial class CpuBackend
{
    /// <summary>K-block depth: a weight panel block (KC × NR, 16 KiB on AVX-512) stays in L1 across the pixel rows.</summary>
    private const int FewPixelsKBlock = 128;

    [ThreadStatic] private static Workspace? t_fewPixelsOutput;

    private static bool UsesFewPixels<T, TV>(in ConvGeometry g) where T : struct, ISimd<TV> where TV : struct => g.Columns <= 2 * T.MR;

    /// <summary>
    /// Runs <paramref name="job"/>, whose Source is the padded input and whose Offsets hold the K taps' offsets,
    /// after appending one window origin per pixel row (the rows past the last pixel repeat it and are dropped).
    /// </summary>
    private unsafe void Conv2dFewPixels<T, TV>(ConvJob job) where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        int* origins = job.Offsets + g.K;
        int rows = FewPixelsRows(g, T.MR);
        for (int j = 0; j < rows; j++) origins[j] = g.ColumnOffset(Math.Min(j, g.Columns - 1));
        ForRanges(job.Weights.ChannelPanels, (panel0, panel1) => FewPixelsTask<T, TV>(job, panel0, panel1), perThread: 1);
    }

    /// <summary>Pixel rows of the transposed product: the pixels rounded up to whole MR-row blocks (one or two).</summary>
    private static int FewPixelsRows(in ConvGeometry g, int mr) => (g.Columns + mr - 1) / mr * mr;

    /// <summary>Output channels of panels [panel0, panel1) for every pixel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void FewPixelsTask<T, TV>(in ConvJob job, int panel0, int panel1) where T : struct, ISimd<TV> where TV : struct
    {
        int MR = T.MR, NR = T.NR;
        ref readonly var g = ref job.Geometry;
        int ld = FewPixelsRows(g, MR);
        int ldc = (panel1 - panel0) * NR;
        float* tile = (t_convTile ??= new()).Floats((long)ld * ldc);
        float* weights = job.Weights.ChannelPanelPointer;
        int* origins = job.Offsets + g.K;
        for (int k0 = 0; k0 < g.K; k0 += FewPixelsKBlock)
        {
            int kc = Math.Min(FewPixelsKBlock, g.K - k0);
            for (int q = panel0; q < panel1; q++)
            {
                float* b = weights + ((long)q * g.K + k0) * NR;
                for (int r = 0; r < ld; r += MR)
                {
                    Sgemm.MicroKernelIndirect<T, TV>(kc, job.Source, origins + r, job.Offsets + k0, b, NR,
                        tile + (long)r * ldc + (q - panel0) * NR, ldc, k0 > 0);
                }
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
}
