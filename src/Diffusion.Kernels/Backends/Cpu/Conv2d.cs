using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Conv2d as an implicit GEMM: y[co, pixel] = Σ_k W[co, k] · patch[k, pixel], k running over (ci, ky, kx).
/// Weights are packed once (PrepareConv2d) into MR-row panels; the input is zero-padded once per call, so every
/// patch value is an in-bounds read, and then copied ("im2col") a K-block at a time into NR-column panels that
/// stay in cache while the Sgemm micro-kernel sweeps the output channels over them. Pixels of all images form
/// one column axis, so a 4×4 layer at batch 8 fills panels as well as a 32×32 layer at batch 1. The epilogue
/// (bias, time-embedding channel bias, residual, output scale) is applied while the tile is still in cache.
/// Few columns over a deep K (small images at batch 1) split K between the threads, so none copies another's patch
/// rows. 3×3 same-size convs with at least 16 4×4 or 2×2 tiles take the Winograd path instead (Conv2dWinograd.cs),
/// convs with at most 2·MR output pixels a transposed product read in place (Conv2dFewPixels.cs), and padded
/// stride-1 convs with at most 3 output channels a direct loop with no im2col (Conv2dFewChannels.cs).
/// </summary>
public sealed partial class CpuBackend
{
    /// <summary>K-block depth: one B micro-panel (KC × NR floats, 32 KiB) stays in the 48 KiB L1.</summary>
    internal const int ConvKBlock = 256;

    /// <summary>Most NR-column panels one task packs; bounds its B block and C tile to L2-sized pieces.</summary>
    private const int ConvMaxPanelsPerTask = 4;

    /// <summary>Ints per im2col run: source offset, destination column, length, source step.</summary>
    private const int RunInts = 4;

    private readonly Workspace _convPadded = new();
    private readonly Workspace _convOffsets = new();
    private readonly Workspace _convPartials = new();

    [ThreadStatic] private static Workspace? t_convPanels;
    [ThreadStatic] private static Workspace? t_convTile;
    [ThreadStatic] private static Workspace? t_convColumns;

    public Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        OpContract.PrepareConv2d(spec, weight.Length, bias.Length);
        return new CpuConv2dWeights(spec, weight, bias, Tier, TierMR, TierNR);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default)
    {
        const string Op = "Conv2d";
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        if (weights is not CpuConv2dWeights w)
            throw new BackendArgumentException($"{Op}: weights were not prepared by a CPU backend");
        Require(w.Tier == Tier, Op, $"the weights were packed for the {CpuTiers.Name(w.Tier)} tier, this backend runs {CpuTiers.Name(Tier)}");
        var spec = w.Spec;
        OpContract.Conv2d(x, spec, y, epilogue);
        CpuTensor? channelBias = epilogue.ChannelBias is { } cbTensor ? Mine(cbTensor, "epilogue.ChannelBias") : null;
        CpuTensor? residual = epilogue.Residual is { } resTensor ? Mine(resTensor, "epilogue.Residual") : null;

        var geometry = new ConvGeometry(spec, x.N, x.H, x.W);
        float* cb = channelBias == null ? null : channelBias.Pointer, res = residual == null ? null : residual.Pointer;
        var job = new ConvJob(geometry, w, xt.Pointer, null, yt.Pointer, cb, res, epilogue.Scale);
        switch (Tier)
        {
            case CpuTier.Avx512: Conv2d<Simd512, Vector512<float>>(job); break;
            case CpuTier.Avx2: Conv2d<Simd256, Vector256<float>>(job); break;
            default: Conv2d<Simd128, Vector128<float>>(job); break;
        }
    }

    /// <summary>Sgemm rows and columns of this backend's tier, which its packed weights follow.</summary>
    private int TierMR => Tier switch { CpuTier.Avx512 => Simd512.MR, CpuTier.Avx2 => Simd256.MR, _ => Simd128.MR };

    private int TierNR => Tier switch { CpuTier.Avx512 => Simd512.NR, CpuTier.Avx2 => Simd256.NR, _ => Simd128.NR };

    /// <summary>Picks the path for <paramref name="input"/> (whose Source is x itself) and runs it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private unsafe void Conv2d<T, TV>(ConvJob input) where T : struct, ISimd<TV> where TV : struct
    {
        var geometry = input.Geometry;
        var w = input.Weights;
        float* source = PadInput<T, TV>(input.Source, geometry);
        switch (WinogradTile(geometry))
        {
            case 4: Conv2dWinograd<T, TV, WinogradF4<T, TV>>(input.WithSource(source, null)); return;
            case 2: Conv2dWinograd<T, TV, WinogradF2<T, TV>>(input.WithSource(source, null)); return;
        }
        bool fewPixels = UsesFewPixels<T, TV>(geometry);
        int* offsets = _convOffsets.Ints(geometry.K + (fewPixels ? FewPixelsRows(geometry, T.MR) : 0));
        geometry.WritePatchOffsets(offsets);

        var job = input.WithSource(source, offsets);
        if (fewPixels)
        {
            Conv2dFewPixels<T, TV>(job);
            return;
        }
        if (UsesFewChannels(geometry))
        {
            Conv2dFewChannels<T, TV>(job);
            return;
        }
        if (ConvPartition.SplitsK(geometry, Threads, T.NR))
        {
            Conv2dSplitK<T, TV>(job);
            return;
        }
        var partition = ConvPartition.For(geometry.Columns, w.MBlocks, Threads, T.NR);
        For(partition.Tasks, task => ConvTask<T, TV>(job, partition, task, null));
    }

    /// <summary>
    /// The direct path for few columns and a deep K: each thread multiplies every column and channel over its own
    /// share of K, leaving partial sums, which a second loop adds and finishes. Split by channels instead, every
    /// thread would copy all the patch rows (a fifth of a 4×4 conv at batch 1 on AVX2).
    /// </summary>
    private unsafe void Conv2dSplitK<T, TV>(ConvJob job) where T : struct, ISimd<TV> where TV : struct
    {
        var partition = ConvPartition.SplitK(job.Geometry.Columns, job.Weights.MBlocks, Threads, T.NR);
        int rows = job.Weights.MBlocks * T.MR, ldc = partition.PanelsPerTask * T.NR;
        var partials = (nint)_convPartials.Floats((long)partition.KTasks * rows * ldc);
        For(partition.Tasks, task => ConvTask<T, TV>(job, partition, task, (float*)partials + (long)task * rows * ldc));
        ForRanges(job.Geometry.Cout, (m0, m1) => ConvAddPartials<T, TV>(job, (float*)partials, partition.KTasks, rows, ldc, m0, m1), perThread: 1);
    }

    /// <summary>Adds the split-K tasks' partial rows [m0, m1) into the first task's, then applies the epilogue.</summary>
    private static unsafe void ConvAddPartials<T, TV>(in ConvJob job, float* partials, int tasks, int rows, int ldc, int m0, int m1)
        where T : struct, ISimd<TV> where TV : struct
    {
        int columns = job.Geometry.Columns;
        for (int m = m0; m < m1; m++)
        {
            float* sum = partials + (long)m * ldc;
            for (int t = 1; t < tasks; t++)
            {
                float* add = partials + ((long)t * rows + m) * ldc;
                int i = 0;
                for (; i <= columns - T.Count; i += T.Count) T.Store(T.Add(T.Load(sum + i), T.Load(add + i)), sum + i);
                for (; i < columns; i++) sum[i] += add[i];
            }
        }
        ConvEpilogue<T, TV>(job, partials + (long)m0 * ldc, ldc, m0, m1, 0, columns);
    }

    /// <summary>
    /// Copies x into a zero-bordered buffer so the im2col copy never tests bounds; unpadded stride-1 convs (1×1)
    /// read x directly. The slack after the buffer, zeroed, lets the stride-2 copy load whole vectors past a run's
    /// end and the few-channel path read whole chunks past the last plane.
    /// </summary>
    private unsafe float* PadInput<T, TV>(float* x, in ConvGeometry g) where T : struct, ISimd<TV> where TV : struct
    {
        if (g.PadBegin == 0 && g.PadEnd == 0 && g.Stride == 1) return x;
        long length = (long)g.N * g.Cin * g.PlaneSize;
        int slack = Math.Max(2 * T.Count, FewChannelsSlack<T, TV>(g));
        float* padded = _convPadded.Floats(length + slack);
        new Span<float>(padded + length, slack).Clear();
        var copy = (nint)x;
        var dest = (nint)padded;
        // The shape in locals: read through the captured geometry's properties, the rows (4 to 32 floats) cost 2.4×
        // as much (a 256-plane 8×8 input took 19 µs, 14% of its stride-2 conv at batch 1 on Zen 3).
        int h = g.H, w = g.W, wp = g.Wp, padBegin = g.PadBegin, planeSize = g.PlaneSize;
        int top = g.PadBegin * g.Wp, bottom = g.PadEnd * g.Wp;
        ForRanges(g.N * g.Cin, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (first, end) =>
        {
            for (int plane = first; plane < end; plane++)
            {
                float* src = (float*)copy + (long)plane * h * w;
                float* d = (float*)dest + (long)plane * planeSize;
                // Borders are a few floats each: scalar stores, not a call per row.
                for (int i = 0; i < top; i++) d[i] = 0f;
                d += top;
                for (int row = 0; row < h; row++, src += w, d += wp)
                {
                    for (int i = 0; i < padBegin; i++) d[i] = 0f;
                    CopyRun<T, TV>(src, d + padBegin, w);
                    for (int i = padBegin + w; i < wp; i++) d[i] = 0f;
                }
                for (int i = 0; i < bottom; i++) d[i] = 0f;
            }
        });
        return padded;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ConvTask<T, TV>(in ConvJob job, in ConvPartition part, int task, float* partials) where T : struct, ISimd<TV> where TV : struct
    {
        int MR = T.MR, NR = T.NR;
        ref readonly var g = ref job.Geometry;
        int kTask = task % part.KTasks;
        task /= part.KTasks;
        int ka = (int)((long)kTask * g.K / part.KTasks), kb = (int)((long)(kTask + 1) * g.K / part.KTasks);
        int nTask = task % part.ColumnTasks, mTask = task / part.ColumnTasks;
        int col0 = nTask * part.PanelsPerTask * NR;
        int col1 = Math.Min(g.Columns, col0 + part.PanelsPerTask * NR);
        int panels = (col1 - col0 + NR - 1) / NR;
        int block0 = mTask * part.BlocksPerGroup;
        int blocks = Math.Min(job.Weights.MBlocks, block0 + part.BlocksPerGroup) - block0;
        if (blocks <= 0 || col0 >= col1) return;

        // Source runs of the task's columns, one list per panel: columns along an output row read the padded
        // input at a fixed step (the stride), so each run is copied as one strided (usually contiguous) span.
        int* runs = (t_convColumns ??= new()).Ints(RunInts * (col1 - col0) + panels + 1);
        int* panelRuns = runs + RunInts * (col1 - col0);
        int runCount = 0;
        for (int q = 0; q < panels; q++)
        {
            panelRuns[q] = runCount;
            int start = col0 + q * NR, end = Math.Min(col1, start + NR);
            for (int j = start; j < end;)
            {
                int begin = g.ColumnOffset(j);
                int step = j + 1 < end ? g.ColumnOffset(j + 1) - begin : 1;
                int length = 1;
                while (j + length < end && g.ColumnOffset(j + length) == begin + length * step) length++;
                int* run = runs + RunInts * runCount++;
                run[0] = begin;
                run[1] = j - start;
                run[2] = length;
                run[3] = length == 1 ? 1 : step;
                j += length;
            }
        }
        panelRuns[panels] = runCount;
        // Output rows of NR pixels or more (stride-2 convs over 32×32, 1×1 convs) make each panel one run of NR
        // columns at one step: those are copied without walking the run list or testing for tails.
        bool ragged = (col1 - col0) % NR != 0;
        bool wholePanels = runCount == panels && !ragged && (runs[3] == 1 || runs[3] == 2);
        for (int q = 0; wholePanels && q < panels; q++)
            wholePanels = runs[RunInts * q + 2] == NR && runs[RunInts * q + 3] == runs[3];

        int ldc = panels * NR;
        float* tile = partials != null ? partials : (t_convTile ??= new()).Floats((long)blocks * MR * ldc);
        float* packed = (t_convPanels ??= new()).Floats((long)panels * ConvKBlock * NR);
        for (int k0 = ka; k0 < kb;)
        {
            // Steps end at K-block boundaries, where the packed weights start a new block.
            int blockStart = k0 / ConvKBlock * ConvKBlock, blockDepth = Math.Min(ConvKBlock, g.K - blockStart);
            int kc = Math.Min(kb, blockStart + blockDepth) - k0;
            // Patch row by patch row, each copied into all the task's panels: a row's columns are one run of the
            // input, read once. Panel by panel, a 1×1 conv over 32×32 read its rows 4 KiB apart once per panel, a
            // line or two each time, and 256→128 at batch 8 took 1.1–1.4× as long on Zen 3 (AVX2).
            for (int kk = 0; kk < kc; kk++)
            {
                float* src = job.Source + job.Offsets[k0 + kk];
                if (wholePanels)
                {
                    CopyPanelRows<T, TV>(src, runs, runs[3], packed + kk * NR, (long)kc * NR, panels);
                    continue;
                }
                for (int q = 0; q < panels; q++)
                {
                    float* dst = packed + (long)q * kc * NR + kk * NR;
                    if (ragged && q == panels - 1) new Span<float>(dst, NR).Clear();
                    for (int* run = runs + RunInts * panelRuns[q]; run < runs + RunInts * panelRuns[q + 1]; run += RunInts)
                    {
                        if (run[3] == 1) CopyRun<T, TV>(src + run[0], dst + run[1], run[2]);
                        else CopyStridedRun<T, TV>(src + run[0], run[3], dst + run[1], run[2]);
                    }
                }
            }
            for (int q = 0; q < panels; q++)
            {
                float* panel = packed + (long)q * kc * NR;
                float* a = job.Weights.KBlock(blockStart) + ((long)block0 * blockDepth + k0 - blockStart) * MR;
                long aBlock = (long)blockDepth * MR;
                int b = 0;
                if (col1 - col0 - q * NR <= NR / 2)
                {
                    for (; b + 1 < blocks; b += 2)
                        Sgemm.MicroKernelNarrow<T, TV>(kc, a + b * aBlock, a + (b + 1) * aBlock, MR, panel, NR, tile + (long)b * MR * ldc + q * NR, ldc, k0 > ka);
                }
                for (; b < blocks; b++)
                    Sgemm.MicroKernel<T, TV>(kc, a + b * aBlock, MR, panel, NR, tile + (long)b * MR * ldc + q * NR, ldc, k0 > ka);
                // The panel's sums are final after the last K block: finish them while they are still in cache.
                if (k0 + kc == g.K && partials == null)
                {
                    int start = col0 + q * NR;
                    ConvEpilogue<T, TV>(job, tile + q * NR, ldc, block0 * MR, Math.Min(g.Cout, (block0 + blocks) * MR), start, Math.Min(col1, start + NR));
                }
            }
            k0 += kc;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ConvEpilogue<T, TV>(in ConvJob job, float* tile, int ldc, int m0, int m1, int col0, int col1)
        where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        int pixels = g.Ho * g.Wo;
        float scale = job.Scale;
        var vscale = T.Broadcast(scale);
        float* channelBias = job.ChannelBias;
        for (int j = col0; j < col1;)
        {
            int n = j / pixels, p = j - n * pixels;
            int length = Math.Min(col1 - j, pixels - p);
            long first = (long)n * g.Cout * pixels + p;
            float* c0 = tile + (j - col0);
            for (int m = m0; m < m1; m++)
            {
                long at = first + (long)m * pixels;
                float bias = job.Weights.Bias[m];
                float add = channelBias == null ? 0f : channelBias[n * g.Cout + m];
                float* dst = job.Y + at;
                float* res = job.Residual == null ? null : job.Residual + at;
                float* c = c0 + (long)(m - m0) * ldc;
                var vbias = T.Broadcast(bias);
                var vadd = T.Broadcast(add);
                int i = 0;
                for (; i <= length - T.Count; i += T.Count)
                {
                    var v = T.Add(T.Load(c + i), vbias);
                    if (channelBias != null) v = T.Add(v, vadd);
                    if (res != null) v = T.Add(v, T.Load(res + i));
                    if (scale != 1f) v = T.Multiply(v, vscale);
                    T.Store(v, dst + i);
                }
                for (; i < length; i++)
                {
                    float v = c[i] + bias;
                    if (channelBias != null) v += add;
                    if (res != null) v += res[i];
                    if (scale != 1f) v *= scale;
                    dst[i] = v;
                }
            }
            j += length;
        }
    }

    /// <summary>
    /// Patch row <paramref name="src"/> into row kk (<paramref name="dst"/>) of every panel, each panel one run of NR
    /// columns at step 1 or 2: whole vectors, no tails. A quarter less copying time than the run list on stride-2
    /// 128→128 at 32×32 (batch 8, Zen 3), the conv 0.96–0.97 of its time on AVX2 and 128-bit alike.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void CopyPanelRows<T, TV>(float* src, int* runs, int step, float* dst, long panelStride, int panels)
        where T : struct, ISimd<TV> where TV : struct
    {
        int n = T.Count;
        for (int q = 0; q < panels; q++, dst += panelStride)
        {
            float* from = src + runs[RunInts * q];
            if (step == 2)
            {
                for (int i = 0; i < T.NR; i += n) T.Store(T.Evens(T.Load(from + 2 * i), T.Load(from + 2 * i + n)), dst + i);
            }
            else
            {
                for (int i = 0; i < T.NR; i += n) T.Store(T.Load(from + i), dst + i);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void CopyStridedRun<T, TV>(float* src, int step, float* dst, int length) where T : struct, ISimd<TV> where TV : struct
    {
        int i = 0, n = T.Count;
        if (step == 2)
        {
            // Even lanes of two vectors: one or two permutes instead of a vector's worth of scalar moves. Output rows
            // of 4 to 16 (the downsamples' 8×8 and 4×4) are finished at the narrower widths, as in CopyRun.
            for (; i <= length - n; i += n)
                T.Store(T.Evens(T.Load(src + 2 * i), T.Load(src + 2 * i + n)), dst + i);
            if (n > 8 && length - i >= 8)
            {
                Simd256.Evens(Vector256.Load(src + 2 * i), Vector256.Load(src + 2 * i + 8)).Store(dst + i);
                i += 8;
            }
            if (n > 4 && length - i >= 4)
            {
                Simd128.Evens(Vector128.Load(src + 2 * i), Vector128.Load(src + 2 * i + 4)).Store(dst + i);
                i += 4;
            }
        }
        for (; i < length; i++) dst[i] = src[(long)i * step];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void CopyRun<T, TV>(float* src, float* dst, int length) where T : struct, ISimd<TV> where TV : struct
    {
        int i = 0;
        for (; i <= length - T.Count; i += T.Count) T.Store(T.Load(src + i), dst + i);
        // Rows of 4 to 32 floats: the narrower vectors finish most of them (x86 has all three widths wherever a wider tier runs).
        if (T.Count > 8 && length - i >= 8) { Vector256.Load(src + i).Store(dst + i); i += 8; }
        if (T.Count > 4 && length - i >= 4) { Vector128.Load(src + i).Store(dst + i); i += 4; }
        for (; i < length; i++) dst[i] = src[i];
    }

    /// <summary>Shapes of one Conv2d call, in the padded-input coordinates the im2col copy uses.</summary>
    private readonly record struct ConvGeometry
    {
        public ConvGeometry(Conv2dSpec spec, int n, int h, int w)
        {
            N = n; Cin = spec.InChannels; Cout = spec.OutChannels; H = h; W = w;
            Kernel = spec.Kernel; Stride = spec.Stride; PadBegin = spec.PadBegin; PadEnd = spec.PadEnd;
            Ho = spec.OutputSize(h); Wo = spec.OutputSize(w);
            Hp = h + PadBegin + PadEnd; Wp = w + PadBegin + PadEnd;
            K = Cin * Kernel * Kernel;
            Columns = n * Ho * Wo;
        }

        public int N { get; }
        public int Cin { get; }
        public int Cout { get; }
        public int H { get; }
        public int W { get; }
        public int Kernel { get; }
        public int Stride { get; }
        public int PadBegin { get; }
        public int PadEnd { get; }
        public int Ho { get; }
        public int Wo { get; }
        public int Hp { get; }
        public int Wp { get; }
        public int K { get; }
        public int Columns { get; }
        public int PlaneSize => Hp * Wp;

        /// <summary>
        /// Where each patch row k = (ci, ky, kx) starts relative to a column's window origin, counted up rather than
        /// divided out of k: two divides a row took 9 µs of a 4×4 conv's 135 at batch 1 (K = 2304).
        /// </summary>
        public unsafe void WritePatchOffsets(int* offsets)
        {
            int k = 0;
            for (int ci = 0; ci < Cin; ci++)
                for (int ky = 0; ky < Kernel; ky++)
                    for (int kx = 0; kx < Kernel; kx++)
                        offsets[k++] = ci * PlaneSize + ky * Wp + kx;
        }

        /// <summary>Where column j = (n, oy, ox)'s window origin sits in the padded input.</summary>
        public int ColumnOffset(int j)
        {
            int pixels = Ho * Wo;
            int n = j / pixels, p = j - n * pixels;
            int oy = p / Wo, ox = p - oy * Wo;
            return n * Cin * PlaneSize + oy * Stride * Wp + ox * Stride;
        }
    }

    private readonly unsafe struct ConvJob(ConvGeometry geometry, CpuConv2dWeights weights, float* source, int* offsets,
        float* y, float* channelBias, float* residual, float scale)
    {
        public readonly ConvGeometry Geometry = geometry;
        public readonly CpuConv2dWeights Weights = weights;
        public readonly float* Source = source;
        public readonly int* Offsets = offsets;
        public readonly float* Y = y;
        public readonly float* ChannelBias = channelBias;
        public readonly float* Residual = residual;
        public readonly float Scale = scale;

        /// <summary>The same job reading <paramref name="newSource"/> (the padded input) through <paramref name="newOffsets"/>.</summary>
        public ConvJob WithSource(float* newSource, int* newOffsets) =>
            new(Geometry, Weights, newSource, newOffsets, Y, ChannelBias, Residual, Scale);
    }

    /// <summary>
    /// How the output is cut into tasks: column ranges of up to ConvMaxPanelsPerTask panels, two per thread where
    /// there are enough, and output-channel groups where one range holds every column; or, for few columns and a
    /// deep K (<see cref="SplitsK"/>), shares of K: share s = task % KTasks is [s·K/KTasks, (s + 1)·K/KTasks).
    /// </summary>
    private readonly record struct ConvPartition(int ColumnTasks, int PanelsPerTask, int BlocksPerGroup, int Tasks, int KTasks = 1)
    {
        /// <summary>
        /// Whether the direct path splits K instead: few columns (small images at batch 1), so channel groups would
        /// each copy the same patch rows, and K at least four K blocks deep (the U-Net's 3×3 convs of 128 channels
        /// and more), so the copy saved outweighs the second loop. It also keeps the small test U-Net's convs
        /// (K = 576) summed in one order: split, its 10-step DDIM run at batch 2 moved 1.06e-4 from torch's, past
        /// the 1e-4 bar that run is held to.
        /// </summary>
        public static bool SplitsK(in ConvGeometry g, int threads, int nr) =>
            threads > 1 && (g.Columns + nr - 1) / nr <= ConvMaxPanelsPerTask && g.K >= 4 * ConvKBlock;

        /// <summary>One task per thread, each over every column and channel and its own share of K.</summary>
        public static ConvPartition SplitK(int columns, int mBlocks, int threads, int nr) =>
            new(1, (columns + nr - 1) / nr, mBlocks, threads, threads);

        public static ConvPartition For(int columns, int mBlocks, int threads, int nr)
        {
            int panels = (columns + nr - 1) / nr;
            if (panels <= ConvMaxPanelsPerTask)
            {
                // Few columns and a shallow K (or one thread): the conv is bound by reading its weights, so each
                // thread takes its own output channels, and so its own share of the weights, over all the columns.
                int perThread = (mBlocks + threads - 1) / threads;
                return new ConvPartition(1, panels, perThread, (mBlocks + perThread - 1) / perThread);
            }
            int wanted = threads == 1 ? 1 : 2 * threads;
            int perTask = Math.Clamp((panels + wanted - 1) / wanted, 1, ConvMaxPanelsPerTask);
            int columnTasks = (panels + perTask - 1) / perTask;
            // Channel groups each repeat the column packing, so they only make up the thread count.
            int groups = Math.Clamp((threads + columnTasks - 1) / columnTasks, 1, mBlocks);
            int perGroup = (mBlocks + groups - 1) / groups;
            groups = (mBlocks + perGroup - 1) / perGroup;
            return new ConvPartition(columnTasks, perTask, perGroup, columnTasks * groups);
        }
    }
}

/// <summary>
/// Weights packed for <see cref="Sgemm"/> of one tier: per K block of <see cref="CpuBackend.ConvKBlock"/>, the MR-row
/// blocks one after another, each stored k-major (MR values per k), zero-padded rows. MR and NR are the tier's, so a
/// backend of another tier cannot use them.
/// </summary>
internal sealed unsafe class CpuConv2dWeights : Conv2dWeights
{
    private readonly float[] _packed;
    private float[]? _winogradF2;
    private float[]? _winogradF4;
    private float[]? _channelPanels;

    public CpuConv2dWeights(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, CpuTier tier, int mr, int nr) : base(spec)
    {
        Tier = tier;
        MR = mr;
        NR = nr;
        K = spec.InChannels * spec.Kernel * spec.Kernel;
        MBlocks = (spec.OutChannels + MR - 1) / MR;
        _packed = GC.AllocateArray<float>(checked(MBlocks * K * MR), pinned: true);
        for (int m = 0; m < spec.OutChannels; m++)
        {
            for (int k = 0; k < K; k++)
                _packed[PackedIndex(m, k)] = weight[m * K + k];
        }
        Bias = GC.AllocateArray<float>(spec.OutChannels, pinned: true);
        bias.CopyTo(Bias);
    }

    public CpuTier Tier { get; }

    public int MR { get; }

    public int NR { get; }

    public int K { get; }

    public int MBlocks { get; }

    public float[] Bias { get; }

    public float* Pointer => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_packed));

    /// <summary>
    /// Where K block [k0, k0 + kc) starts (k0 a multiple of <see cref="CpuBackend.ConvKBlock"/>): its MBlocks blocks
    /// follow each other, block b at + b·kc·MR, so a task sweeping its blocks reads one sequential stream.
    /// </summary>
    public float* KBlock(int k0) => Pointer + (long)k0 * MBlocks * MR;

    /// <summary>Where weight (m, k) lies: K block, then MR-row block, then k within the block, then row.</summary>
    private int PackedIndex(int m, int k)
    {
        int k0 = k / CpuBackend.ConvKBlock * CpuBackend.ConvKBlock, kc = Math.Min(CpuBackend.ConvKBlock, K - k0);
        return k0 * MBlocks * MR + ((m / MR) * kc + k - k0) * MR + m % MR;
    }

    /// <summary>Output channels in panels of <see cref="NR"/>, the last one zero-padded.</summary>
    public int ChannelPanels => (Spec.OutChannels + NR - 1) / NR;

    /// <summary>
    /// The same weights as NR-channel panels, each stored k-major (NR channel values per k), for the few-pixel
    /// path that multiplies them as the B matrix: (panel·K + k)·NR + channel % NR. Built on first use.
    /// </summary>
    public float* ChannelPanelPointer
    {
        get
        {
            var panels = LazyInitializer.EnsureInitialized(ref _channelPanels, PackChannelPanels);
            return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(panels));
        }
    }

    private float[] PackChannelPanels()
    {
        var panels = GC.AllocateArray<float>(checked(ChannelPanels * K * NR), pinned: true);
        for (int m = 0; m < Spec.OutChannels; m++)
        {
            for (int k = 0; k < K; k++)
                panels[((m / NR) * K + k) * NR + m % NR] = _packed[PackedIndex(m, k)];
        }
        return panels;
    }

    /// <summary>
    /// The Winograd F(m×m, 3×3) weights U = G g Gᵀ (3×3 kernels only; m = 2 or 4, G in Conv2dWinogradTiles.cs), as
    /// (m+2)² matrices (one per transform point ξ) packed like <see cref="Pointer"/> with k = input channel:
    /// ((ξ·MBlocks + block)·Cin + ci)·MR + row. Each version is built on first use, from the direct panels, in float64.
    /// </summary>
    public float* Winograd(int tile)
    {
        var u = tile == 4
            ? LazyInitializer.EnsureInitialized(ref _winogradF4, () => TransformForWinograd(WinogradF4G))
            : LazyInitializer.EnsureInitialized(ref _winogradF2, () => TransformForWinograd(WinogradF2G));
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(u));
    }

    private static readonly double[] WinogradF2G = [1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1];

    private static readonly double[] WinogradF4G =
    [
        1, 0, 0,
        1 / 3.0, 1 / 3.0, 1 / 3.0,
        -1 / 3.0, 1 / 3.0, -1 / 3.0,
        -16 / 15.0, -8 / 15.0, -4 / 15.0,
        1 / 15.0, -2 / 15.0, 4 / 15.0,
        0, 0, 1,
    ];

    private float[] TransformForWinograd(double[] gm)
    {
        int cin = Spec.InChannels, edge = gm.Length / 3;
        var u = GC.AllocateArray<float>(checked(edge * edge * MBlocks * cin * MR), pinned: true);
        Span<double> kernel = stackalloc double[9];
        Span<double> half = stackalloc double[3 * edge];
        for (int m = 0; m < Spec.OutChannels; m++)
        {
            for (int ci = 0; ci < cin; ci++)
            {
                for (int k = 0; k < 9; k++) kernel[k] = _packed[PackedIndex(m, ci * 9 + k)];
                // half = G·g (edge × 3), then U = half·Gᵀ (edge × edge).
                for (int a = 0; a < edge; a++)
                {
                    for (int c = 0; c < 3; c++)
                        half[a * 3 + c] = gm[a * 3] * kernel[c] + gm[a * 3 + 1] * kernel[3 + c] + gm[a * 3 + 2] * kernel[6 + c];
                }
                for (int a = 0; a < edge; a++)
                {
                    for (int b = 0; b < edge; b++)
                    {
                        double value = half[a * 3] * gm[b * 3] + half[a * 3 + 1] * gm[b * 3 + 1] + half[a * 3 + 2] * gm[b * 3 + 2];
                        u[(((a * edge + b) * MBlocks + m / MR) * cin + ci) * MR + m % MR] = (float)value;
                    }
                }
            }
        }
        return u;
    }

    protected override void Dispose(bool disposing) { }
}
