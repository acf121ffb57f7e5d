// Conv2d — the GPU twin of CpuBackend.Conv2d (src/Diffusion.Kernels/Backends/Cpu/Conv2d.cs).
//
// For a square K×K kernel with stride s and padding p before the image (PadEnd only changes the output size):
//   y[n, co, oy, ox] = ( bias[co] + Σ_{ci, ky, kx} w[co, ci, ky, kx] · x[n, ci, oy·s − p + ky, ox·s − p + kx]
//                        + channelBias[n, co] + residual[n, co, oy, ox] ) · scale
// where reads outside the image are zero; channelBias and residual are optional (Conv2dParams flags), the
// epilogue that folds the time-embedding broadcast and the residual add into the store.
// Weights stay in PyTorch's layout (Cout, Cin·K·K): the threads of a warp compute neighbouring pixels of one output
// channel, so they all read the same weight (one broadcast) and neighbouring input values.
//
// Versions (DIFFUSION_KERNEL_VERSION_conv2d=N, registered in KernelCatalog):
//   1  Version1: one thread per output value running the CPU loop nest over (ci, ky, kx). Readable; every thread
//      re-reads its weights and inputs from global memory.
//   2  Version2<TTile, TKernel> (default): implicit GEMM. The conv is the matrix product
//      Y[co, pixel] = Σ_k W[co, k] · X̂[k, pixel] with k = (ci, ky, kx) and pixel = (n, oy, ox), where X̂ (im2col) is
//      never stored: each Depth-deep slice of it is gathered from x straight into shared memory beside the matching
//      slice of W. A block computes a Channels × Pixels tile of Y (TTile: 64 × 64 with 256 threads, or 32 × 64 with
//      128 for layers with few output channels); each thread keeps a 4 × 4 sub-tile of accumulators in registers
//      (sixteen named floats: ILGPU has no register arrays and unrolls no loop) and reads the staged slices from
//      shared memory, so each value fetched from global memory is used 32 or 64 times. TKernel fixes K at compile
//      time (1 or 3) so splitting k into (ci, ky, kx) divides by constants; KernelSizeAny reads it at run time.
//   3  Version3<TKernel> (opt-in half precision, never the default): the same implicit GEMM on tensor cores.
//      Weights are stored in half precision once (Version3Weights: row co, k contiguous, zero-padded to a multiple
//      of 32); activations stay float32 in memory (the IBackend seam is float32) and are rounded to half as they
//      are gathered into shared memory. A block of 4 warps computes a 64 × 64 tile of Y, each warp a 32 × 32 piece
//      as 2 × 4 mma.sync m16n8k16 tiles (half inputs, float32 accumulation; TensorCores.Mma, whose C# twin runs on
//      the emulated device). Both tiles keep k contiguous ([channel][k], [pixel][k]), so every fragment register
//      is one aligned 32-bit shared load. Needs compute capability 8.0+. Rounding the inputs to 11 significant bits
//      costs accuracy: ~1e-3 normalised error, not ~1e-6.

using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace Diffusion.Kernels.Gpu;

/// <summary>Geometry and epilogue of one conv2d launch; the host fills it from Conv2dSpec and the tensors.</summary>
public struct Conv2dParams
{
    public int Batch, InChannels, Height, Width, OutChannels, OutHeight, OutWidth, Kernel, Stride, Pad;
    public float Scale;
    /// <summary>1 when channelBias / residual hold data; 0 when they are one-element placeholders.</summary>
    public int HasChannelBias, HasResidual;

    public readonly int OutputCount => Batch * OutChannels * OutHeight * OutWidth;
}

/// <summary>
/// The block tile of conv2d version 2, fixed at compile time: <see cref="Channels"/> output channels ×
/// <see cref="Pixels"/> output pixels per block, reduction slices <see cref="Depth"/> deep. Each thread owns a
/// <see cref="Conv2d.ThreadTile"/>² register tile, so a block has (Channels/4)·(Pixels/4) threads, and the staging
/// loops need that count to be a multiple of Pixels and of Depth.
/// </summary>
public interface IConv2dTile
{
    int Channels { get; }
    int Pixels { get; }
    int Depth { get; }
}

/// <summary>64 channels × 64 pixels, 256 threads: the U-Net's wide layers.</summary>
public struct Conv2dTile64 : IConv2dTile
{
    public readonly int Channels => 64;
    public readonly int Pixels => 64;
    public readonly int Depth => 16;
}

/// <summary>32 channels × 64 pixels, 128 threads: layers with at most 32 output channels (conv_out has 3), where a
/// 64-channel tile would leave most of its threads computing zeros.</summary>
public struct Conv2dTile32 : IConv2dTile
{
    public readonly int Channels => 32;
    public readonly int Pixels => 64;
    public readonly int Depth => 16;
}

/// <summary>The kernel size K at compile time (0: read from <see cref="Conv2dParams.Kernel"/>).</summary>
public interface IKernelSize
{
    int Size { get; }
}

public struct KernelSize1 : IKernelSize
{
    public readonly int Size => 1;
}

public struct KernelSize3 : IKernelSize
{
    public readonly int Size => 3;
}

public struct KernelSizeAny : IKernelSize
{
    public readonly int Size => 0;
}

public static class Conv2d
{
    public static void Version1(Index1D index, Conv2dParams p, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> channelBias, ArrayView<float> residual, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OutWidth;
        int oy = i / p.OutWidth % p.OutHeight;
        int co = i / (p.OutWidth * p.OutHeight) % p.OutChannels;
        int n = i / (p.OutWidth * p.OutHeight * p.OutChannels);
        int taps = p.Kernel * p.Kernel;
        float acc = 0f;
        for (int ci = 0; ci < p.InChannels; ci++)
        {
            long plane = ((long)n * p.InChannels + ci) * p.Height * p.Width;
            long row = ((long)co * p.InChannels + ci) * taps;
            for (int ky = 0; ky < p.Kernel; ky++)
            {
                int iy = oy * p.Stride - p.Pad + ky;
                if (iy < 0 || iy >= p.Height) continue;
                for (int kx = 0; kx < p.Kernel; kx++)
                {
                    int ix = ox * p.Stride - p.Pad + kx;
                    if (ix < 0 || ix >= p.Width) continue;
                    acc += weight[row + ky * p.Kernel + kx] * x[plane + (long)iy * p.Width + ix];
                }
            }
        }
        y[i] = Epilogue(acc, n, co, i, p, bias, channelBias, residual);
    }

    /// <summary>Output channels and pixels each thread of version 2 accumulates (the unrolled 4 × 4 below).</summary>
    public const int ThreadTile = 4;

    /// <summary>The launch of version 2 for tile <typeparamref name="TTile"/>: one block per tile of Y.</summary>
    public static KernelConfig Version2Launch<TTile>(in Conv2dParams p) where TTile : struct, IConv2dTile
    {
        var tile = default(TTile);
        int columns = p.Batch * p.OutHeight * p.OutWidth;
        return new KernelConfig(
            new Index2D((columns + tile.Pixels - 1) / tile.Pixels, (p.OutChannels + tile.Channels - 1) / tile.Channels),
            new Index2D(tile.Channels / ThreadTile * (tile.Pixels / ThreadTile), 1));
    }

    public static void Version2<TTile, TKernel>(Conv2dParams p, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> channelBias, ArrayView<float> residual, ArrayView<float> y)
        where TTile : struct, IConv2dTile
        where TKernel : struct, IKernelSize
    {
        var tile = default(TTile);
        int bm = tile.Channels, bn = tile.Pixels, bk = tile.Depth;
        int threads = bm / ThreadTile * (bn / ThreadTile);
        int ks = default(TKernel).Size > 0 ? default(TKernel).Size : p.Kernel;
        int taps = ks * ks;
        int depth = p.InChannels * taps;           // the GEMM's reduction length
        int pixels = p.OutHeight * p.OutWidth;     // per image
        int columns = p.Batch * pixels;            // the GEMM's N
        int co0 = Grid.IdxY * bm;
        int p0 = Grid.IdxX * bn;
        int tid = Group.IdxX;

        // a: [k][channel] with one float of padding per row, so the 16 k's a warp stores land on distinct banks.
        int lda = bm + 1;
        var a = SharedMemory.Allocate<float>(tile.Depth * (tile.Channels + 1));
        var b = SharedMemory.Allocate<float>(tile.Depth * tile.Pixels);

        // Staging roles. Weights: each thread reads one k of channels aRow, aRow + aStep, ... (consecutive threads,
        // consecutive k: a weight row is contiguous). Input: one pixel column, fixed, so its (n, oy, ox) is decoded once.
        int aK = tid % bk, aRow = tid / bk, aStep = threads / bk;
        int bCol = tid % bn, bRow = tid / bn, bStep = threads / bn;
        int pixel = p0 + bCol;
        var column = new PatchColumn(p, pixel, columns);

        // Computing role: thread (ty, tx) owns channels ty + (bm/4)·i and pixels tx + (bn/4)·j. Strided ownership
        // keeps a warp's shared reads on distinct banks (or one broadcast) and its final stores coalesced.
        int tx = tid % (bn / ThreadTile), ty = tid / (bn / ThreadTile);
        int sm = bm / ThreadTile, sn = bn / ThreadTile;
        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f, c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;

        for (int k0 = 0; k0 < depth; k0 += bk)
        {
            int k = k0 + aK;
            for (int m = aRow; m < bm; m += aStep)
            {
                int co = co0 + m;
                a[aK * lda + m] = k < depth && co < p.OutChannels ? weight[(long)co * depth + k] : 0f;
            }
            for (int row = bRow; row < bk; row += bStep)
            {
                b[row * bn + bCol] = column.Read(p, x, ks, taps, depth, k0 + row);
            }
            Group.Barrier();
            for (int kk = 0; kk < bk; kk++)
            {
                int ar = kk * lda + ty, br = kk * bn + tx;
                float a0 = a[ar], a1 = a[ar + sm], a2 = a[ar + 2 * sm], a3 = a[ar + 3 * sm];
                float b0 = b[br], b1 = b[br + sn], b2 = b[br + 2 * sn], b3 = b[br + 3 * sn];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }

        int m0 = co0 + ty, n0 = p0 + tx;
        Store(p, m0, n0, c00, bias, channelBias, residual, y);
        Store(p, m0, n0 + sn, c01, bias, channelBias, residual, y);
        Store(p, m0, n0 + 2 * sn, c02, bias, channelBias, residual, y);
        Store(p, m0, n0 + 3 * sn, c03, bias, channelBias, residual, y);
        Store(p, m0 + sm, n0, c10, bias, channelBias, residual, y);
        Store(p, m0 + sm, n0 + sn, c11, bias, channelBias, residual, y);
        Store(p, m0 + sm, n0 + 2 * sn, c12, bias, channelBias, residual, y);
        Store(p, m0 + sm, n0 + 3 * sn, c13, bias, channelBias, residual, y);
        Store(p, m0 + 2 * sm, n0, c20, bias, channelBias, residual, y);
        Store(p, m0 + 2 * sm, n0 + sn, c21, bias, channelBias, residual, y);
        Store(p, m0 + 2 * sm, n0 + 2 * sn, c22, bias, channelBias, residual, y);
        Store(p, m0 + 2 * sm, n0 + 3 * sn, c23, bias, channelBias, residual, y);
        Store(p, m0 + 3 * sm, n0, c30, bias, channelBias, residual, y);
        Store(p, m0 + 3 * sm, n0 + sn, c31, bias, channelBias, residual, y);
        Store(p, m0 + 3 * sm, n0 + 2 * sn, c32, bias, channelBias, residual, y);
        Store(p, m0 + 3 * sm, n0 + 3 * sn, c33, bias, channelBias, residual, y);
    }

    /// <summary>The epilogue of one GEMM element (channel co, pixel column) when it lies inside Y.</summary>
    private static void Store(in Conv2dParams p, int co, int column, float acc, ArrayView<float> bias, ArrayView<float> channelBias,
        ArrayView<float> residual, ArrayView<float> y)
    {
        int pixels = p.OutHeight * p.OutWidth;
        if (co >= p.OutChannels || column >= p.Batch * pixels) return;
        int n = column / pixels;
        long index = ((long)n * p.OutChannels + co) * pixels + (column - n * pixels);
        y[index] = Epilogue(acc, n, co, index, p, bias, channelBias, residual);
    }

    /// <summary>Version 3's block tile: output channels and pixels per block, reduction depth per staged slice.</summary>
    public const int Version3Channels = 64, Version3Pixels = 64, Version3Depth = 32;

    /// <summary>Version 3's threads: 4 warps in a 2 × 2 grid, each computing 32 channels × 32 pixels.</summary>
    public const int Version3Threads = 128;

    // A shared tile row: Version3Depth halves as 16 words, plus 4 words of padding. The 20-word stride puts the
    // 8 rows × 4 words of a fragment load on 32 distinct banks.
    private const int Version3RowWords = Version3Depth / 2 + 4;

    /// <summary>The weight row length of version 3: the reduction length padded to a whole number of slices.</summary>
    public static int Version3PaddedDepth(int depth) => (depth + Version3Depth - 1) / Version3Depth * Version3Depth;

    /// <summary>
    /// Version 3's weights from PyTorch's (Cout, Cin·K·K) floats: half precision (rounded to nearest even), each row
    /// zero-padded to <see cref="Version3PaddedDepth"/>, so a slice never reads past its row.
    /// </summary>
    public static Half[] Version3Weights(ReadOnlySpan<float> weight, int outChannels, int depth)
    {
        int padded = Version3PaddedDepth(depth);
        var halves = new Half[(long)outChannels * padded];
        for (int co = 0; co < outChannels; co++)
            for (int k = 0; k < depth; k++)
                halves[(long)co * padded + k] = Interop.IntAsFloat(TensorCores.RoundToHalf(weight[co * depth + k]));
        return halves;
    }

    public static KernelConfig Version3Launch(in Conv2dParams p)
    {
        int columns = p.Batch * p.OutHeight * p.OutWidth;
        return new KernelConfig(
            new Index2D((columns + Version3Pixels - 1) / Version3Pixels, (p.OutChannels + Version3Channels - 1) / Version3Channels),
            new Index2D(Version3Threads, 1));
    }

    public static void Version3<TKernel>(Conv2dParams p, ArrayView<float> x, ArrayView<Half> weight, ArrayView<float> bias,
        ArrayView<float> channelBias, ArrayView<float> residual, ArrayView<float> y)
        where TKernel : struct, IKernelSize
    {
        int ks = default(TKernel).Size > 0 ? default(TKernel).Size : p.Kernel;
        int taps = ks * ks;
        int depth = p.InChannels * taps;
        int rowPairs = Version3PaddedDepth(depth) / 2;
        int columns = p.Batch * p.OutHeight * p.OutWidth;
        int co0 = Grid.IdxY * Version3Channels;
        int p0 = Grid.IdxX * Version3Pixels;
        int tid = Group.IdxX;
        var weightPairs = weight.Cast<uint>();
        var a = SharedMemory.Allocate<uint>(Version3Channels * Version3RowWords); // [channel][k pair]
        var b = SharedMemory.Allocate<uint>(Version3Pixels * Version3RowWords);   // [pixel][k pair]

        // Staging the input: one pixel column per thread (decoded once), k pairs firstPair, firstPair + 2, ...
        int bCol = tid % Version3Pixels, firstPair = tid / Version3Pixels;
        int pixel = p0 + bCol;
        var column = new PatchColumn(p, pixel, columns);

        int warp = tid / Warp.WarpSize, lane = tid % Warp.WarpSize;
        int g = lane / 4, t = lane % 4;
        int wm = warp / 2 * 32, wn = warp % 2 * 32;
        Accumulator c00 = default, c01 = default, c02 = default, c03 = default;
        Accumulator c10 = default, c11 = default, c12 = default, c13 = default;

        for (int k0 = 0; k0 < depth; k0 += Version3Depth)
        {
            for (int e = tid; e < Version3Channels * (Version3Depth / 2); e += Version3Threads)
            {
                int row = e / (Version3Depth / 2), pair = e % (Version3Depth / 2);
                int co = co0 + row;
                a[row * Version3RowWords + pair] = co < p.OutChannels ? weightPairs[(long)co * rowPairs + k0 / 2 + pair] : 0u;
            }
            for (int pair = firstPair; pair < Version3Depth / 2; pair += Version3Threads / Version3Pixels)
            {
                int k = k0 + 2 * pair;
                b[bCol * Version3RowWords + pair] = TensorCores.PackHalf2(
                    column.Read(p, x, ks, taps, depth, k), column.Read(p, x, ks, taps, depth, k + 1));
            }
            Group.Barrier();
            for (int kk = 0; kk < Version3Depth; kk += 16)
            {
                int word = kk / 2 + t;
                var a0 = TensorCores.LoadA(a, Version3RowWords, wm + g, word);
                var a1 = TensorCores.LoadA(a, Version3RowWords, wm + 16 + g, word);
                var b0 = TensorCores.LoadB(b, Version3RowWords, wn + g, word);
                var b1 = TensorCores.LoadB(b, Version3RowWords, wn + 8 + g, word);
                var b2 = TensorCores.LoadB(b, Version3RowWords, wn + 16 + g, word);
                var b3 = TensorCores.LoadB(b, Version3RowWords, wn + 24 + g, word);
                c00 = TensorCores.Mma(c00, a0, b0);
                c01 = TensorCores.Mma(c01, a0, b1);
                c02 = TensorCores.Mma(c02, a0, b2);
                c03 = TensorCores.Mma(c03, a0, b3);
                c10 = TensorCores.Mma(c10, a1, b0);
                c11 = TensorCores.Mma(c11, a1, b1);
                c12 = TensorCores.Mma(c12, a1, b2);
                c13 = TensorCores.Mma(c13, a1, b3);
            }
            Group.Barrier();
        }

        int m0 = co0 + wm + g, n0 = p0 + wn + 2 * t;
        StoreFragment(p, m0, n0, c00, bias, channelBias, residual, y);
        StoreFragment(p, m0, n0 + 8, c01, bias, channelBias, residual, y);
        StoreFragment(p, m0, n0 + 16, c02, bias, channelBias, residual, y);
        StoreFragment(p, m0, n0 + 24, c03, bias, channelBias, residual, y);
        StoreFragment(p, m0 + 16, n0, c10, bias, channelBias, residual, y);
        StoreFragment(p, m0 + 16, n0 + 8, c11, bias, channelBias, residual, y);
        StoreFragment(p, m0 + 16, n0 + 16, c12, bias, channelBias, residual, y);
        StoreFragment(p, m0 + 16, n0 + 24, c13, bias, channelBias, residual, y);
    }

    /// <summary>The four outputs of one accumulator: channels co (C0, C1) and co + 8 (C2, C3), pixel columns col and col + 1.</summary>
    private static void StoreFragment(in Conv2dParams p, int co, int col, Accumulator c, ArrayView<float> bias, ArrayView<float> channelBias,
        ArrayView<float> residual, ArrayView<float> y)
    {
        Store(p, co, col, c.C0, bias, channelBias, residual, y);
        Store(p, co, col + 1, c.C1, bias, channelBias, residual, y);
        Store(p, co + 8, col, c.C2, bias, channelBias, residual, y);
        Store(p, co + 8, col + 1, c.C3, bias, channelBias, residual, y);
    }

    /// <summary>The store every version ends with: bias, the optional per-(n, co) bias and residual, then the scale.</summary>
    public static float Epilogue(float acc, int n, int co, long index, in Conv2dParams p, ArrayView<float> bias,
        ArrayView<float> channelBias, ArrayView<float> residual)
    {
        float value = acc + bias[co];
        if (p.HasChannelBias != 0) value += channelBias[(long)n * p.OutChannels + co];
        if (p.HasResidual != 0) value += residual[index];
        return value * p.Scale;
    }
}

/// <summary>
/// One output pixel's im2col column, as the tiled versions stage it: the pixel (n, oy, ox) is decoded once, and
/// element k = (ci, ky, kx) is then x at (n, ci, iy0 + ky, ix0 + kx), zero outside the image, past the depth or
/// for a pixel past the last column.
/// </summary>
internal readonly struct PatchColumn
{
    private readonly long _image;
    private readonly int _iy0, _ix0;
    private readonly bool _inside;

    public PatchColumn(in Conv2dParams p, int pixel, int columns)
    {
        int pixels = p.OutHeight * p.OutWidth;
        _inside = pixel < columns;
        int n = _inside ? pixel / pixels : 0;
        int rem = _inside ? pixel - n * pixels : 0;
        _iy0 = rem / p.OutWidth * p.Stride - p.Pad;
        _ix0 = rem % p.OutWidth * p.Stride - p.Pad;
        _image = (long)n * p.InChannels * p.Height * p.Width;
    }

    public float Read(in Conv2dParams p, ArrayView<float> x, int ks, int taps, int depth, int k)
    {
        if (k >= depth || !_inside) return 0f;
        int ci = k / taps;
        int tap = k - ci * taps;
        int ky = tap / ks;
        int iy = _iy0 + ky;
        int ix = _ix0 + tap - ky * ks;
        return iy >= 0 && iy < p.Height && ix >= 0 && ix < p.Width ? x[_image + ((long)ci * p.Height + iy) * p.Width + ix] : 0f;
    }
}
