using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The two Winograd versions' transforms (see Conv2dWinograd.cs): the input transform V = Bᵀ d B of a vector of
/// tiles (one per lane) into the per-ξ B panels, and the output transform Y = Aᵀ M A with the conv's epilogue.
/// Where the lanes are two runs of half a vector of consecutive tiles along tile rows, patches are read and outputs
/// written with contiguous loads, stores and permutes; otherwise they are gathered and scattered per lane. Lanes
/// past the tile count repeat the last tile; their columns are computed and never stored.
/// </summary>
public sealed partial class CpuBackend
{
    private interface IWinogradTile<T, TV> where T : struct, ISimd<TV> where TV : struct
    {
        /// <summary>m, the output tile's edge; the input patch is m + 2 wide, with (m + 2)² transform points.</summary>
        static abstract int Size { get; }

        /// <summary>U = G g Gᵀ for this version, packed per point (<see cref="CpuConv2dWeights.Winograd"/>).</summary>
        static abstract unsafe float* Weights(CpuConv2dWeights w);

        /// <summary>
        /// V[ξ][ci − ci0][lane] for input channels [ci0, ci0 + channels) of a vector of tiles, their patches read through
        /// <paramref name="patch"/> (<see cref="WinogradTransformInput"/> picks the reader).
        /// </summary>
        static abstract unsafe void TransformInput<TPatch>(TPatch patch, in ConvGeometry g, int ci0, int channels, float* v, long xiStride)
            where TPatch : struct, IPatchColumns<TV>;

        /// <summary>The same, for lanes in two runs of half a vector of consecutive tiles starting at first and second.</summary>
        static abstract unsafe void TransformRuns(float* first, float* second, in ConvGeometry g, int ci0, int channels, float* v, long xiStride);

        /// <summary>Output channel co of up to a vector of tiles, from its products M[ξ][lane], with the epilogue.</summary>
        static abstract unsafe void TransformOutput(in ConvJob job, int co, float* products, long xiStride, int* outputs, int count);
    }

    /// <summary>
    /// F(2×2, 3×3): Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], Aᵀ = [1 1 1 0; 0 1 −1 −1],
    /// G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
    /// </summary>
    private readonly struct WinogradF2<T, TV> : IWinogradTile<T, TV> where T : struct, ISimd<TV> where TV : struct
    {
        public static int Size => 2;

        public static unsafe float* Weights(CpuConv2dWeights w) => w.Winograd(2);

        public static unsafe void TransformRuns(float* first, float* second, in ConvGeometry g, int ci0, int channels, float* v, long xiStride) =>
            TransformInput(new TileRuns2(first, second), g, ci0, channels, v, xiStride);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static unsafe void TransformInput<TPatch>(TPatch patch, in ConvGeometry g, int ci0, int channels, float* v, long xiStride)
            where TPatch : struct, IPatchColumns<TV>
        {
            int wp = g.Wp;
            for (int ci = ci0; ci < ci0 + channels; ci++)
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
                float* dst = v + (long)(ci - ci0) * T.NR;
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

        /// <summary>
        /// Lanes in two runs of half a vector of tiles: tile l's column c is element 2l + c of its run, so a vector
        /// loaded at c &amp; 2 holds every column c of half the lanes.
        /// </summary>
        private readonly unsafe struct TileRuns2(float* first, float* second) : IPatchColumns<TV>
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public TV Column(long offset, int c)
            {
                var a = T.Load(first + offset + (c & 2));
                var b = T.Load(second + offset + (c & 2));
                return (c & 1) == 0 ? T.Evens(a, b) : T.Odds(a, b);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static unsafe void TransformOutput(in ConvJob job, int co, float* products, long xiStride, int* outputs, int count)
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
                // Interleaving a tile row's left and right outputs gives a vector of contiguous pixels per run.
                long first = outputs[0] + co * plane, second = outputs[n / 2] + co * plane;
                TV addFirst = WinogradChannelAdd<T, TV>(job, first, co), addSecond = WinogradChannelAdd<T, TV>(job, second, co);
                WinogradStoreRun<T, TV>(job, first, T.InterleaveLower(y00, y01), addFirst);
                WinogradStoreRun<T, TV>(job, second, T.InterleaveUpper(y00, y01), addSecond);
                WinogradStoreRun<T, TV>(job, first + g.Wo, T.InterleaveLower(y10, y11), addFirst);
                WinogradStoreRun<T, TV>(job, second + g.Wo, T.InterleaveUpper(y10, y11), addSecond);
                return;
            }
            float* y = stackalloc float[4 * n];
            T.Store(y00, y);
            T.Store(y01, y + n);
            T.Store(y10, y + 2 * n);
            T.Store(y11, y + 3 * n);
            WinogradStoreLanes(job, co, y, 2, n, outputs, count);
        }
    }

    /// <summary>
    /// F(4×4, 3×3) at the points 0, 1, −1, ½, −2 and ∞:
    /// Bᵀ = [1 −1.5 −2 1.5 1 0; 0 −1 .5 2.5 1 0; 0 1 −2.5 .5 1 0; 0 −2 −1 2 1 0; 0 .5 −1 −.5 1 0; 0 1 −1.5 −2 1.5 1],
    /// Aᵀ = [1 1 1 1 1 0; 0 1 −1 ½ −2 0; 0 1 1 ¼ 4 0; 0 1 −1 ⅛ −8 1],
    /// G = [1 0 0; ⅓ ⅓ ⅓; −⅓ ⅓ −⅓; −16/15 −8/15 −4/15; 1/15 −2/15 4/15; 0 0 1].
    /// </summary>
    private readonly struct WinogradF4<T, TV> : IWinogradTile<T, TV> where T : struct, ISimd<TV> where TV : struct
    {
        public static int Size => 4;

        public static unsafe float* Weights(CpuConv2dWeights w) => w.Winograd(4);

        public static unsafe void TransformRuns(float* first, float* second, in ConvGeometry g, int ci0, int channels, float* v, long xiStride) =>
            TransformInput(new TileRuns4(first, second), g, ci0, channels, v, xiStride);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static unsafe void TransformInput<TPatch>(TPatch patch, in ConvGeometry g, int ci0, int channels, float* v, long xiStride)
            where TPatch : struct, IPatchColumns<TV>
        {
            int wp = g.Wp, n = T.Count;
            // Bᵀ down the patch's columns into t (row-major, 6 × 6 vectors, in L1), then along t's rows into V.
            float* t = stackalloc float[36 * n];
            for (int ci = ci0; ci < ci0 + channels; ci++)
            {
                long plane = (long)ci * g.PlaneSize;
                for (int c = 0; c < 6; c++)
                {
                    Bt(patch.Column(plane, c), patch.Column(plane + wp, c), patch.Column(plane + 2 * wp, c),
                        patch.Column(plane + 3 * wp, c), patch.Column(plane + 4 * wp, c), patch.Column(plane + 5 * wp, c),
                        t + c * n, 6 * n);
                }
                float* dst = v + (long)(ci - ci0) * T.NR;
                for (int a = 0; a < 6; a++)
                {
                    float* row = t + 6 * a * n;
                    Bt(T.Load(row), T.Load(row + n), T.Load(row + 2 * n), T.Load(row + 3 * n), T.Load(row + 4 * n), T.Load(row + 5 * n),
                        dst + 6 * a * xiStride, xiStride);
                }
            }
        }

        /// <summary>Bᵀ d for one 6-vector d, its six results stored <paramref name="stride"/> floats apart.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static unsafe void Bt(TV d0, TV d1, TV d2, TV d3, TV d4, TV d5, float* dst, long stride)
        {
            var a = T.Subtract(d3, d1);
            var b = T.Subtract(d4, d2);
            var p = T.FusedMultiplyAdd(T.Broadcast(0.5f), T.Add(d2, d3), d4);
            T.Store(T.FusedMultiplyAdd(T.Broadcast(1.5f), a, T.FusedMultiplyAdd(T.Broadcast(-2f), d2, T.Add(d0, d4))), dst);
            T.Store(T.FusedMultiplyAdd(T.Broadcast(2f), d3, T.Subtract(p, d1)), dst + stride);
            T.Store(T.FusedMultiplyAdd(T.Broadcast(-3f), d2, T.Add(p, d1)), dst + 2 * stride);
            T.Store(T.FusedMultiplyAdd(T.Broadcast(2f), a, b), dst + 3 * stride);
            T.Store(T.FusedMultiplyAdd(T.Broadcast(-0.5f), a, b), dst + 4 * stride);
            T.Store(T.FusedMultiplyAdd(T.Broadcast(1.5f), b, T.FusedMultiplyAdd(T.Broadcast(-2f), d3, T.Add(d1, d5))), dst + 5 * stride);
        }

        /// <summary>
        /// Lanes in two runs of half a vector of tiles: tile l's column c is element 4l + c of its run. Two vectors
        /// loaded at 0 (columns 0–3) or 2 (columns 4 and 5, as 2 and 3 from there) hold that column of half the lanes
        /// at every fourth element, picked out by two even/odd permutes; neither load reads past the last patch.
        /// </summary>
        private readonly unsafe struct TileRuns4(float* first, float* second) : IPatchColumns<TV>
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public TV Column(long offset, int c)
            {
                int at = c < 4 ? 0 : 2, j = c - at, n = T.Count;
                float* p = first + offset + at, q = second + offset + at;
                var lo = (j & 1) == 0 ? T.Evens(T.Load(p), T.Load(p + n)) : T.Odds(T.Load(p), T.Load(p + n));
                var hi = (j & 1) == 0 ? T.Evens(T.Load(q), T.Load(q + n)) : T.Odds(T.Load(q), T.Load(q + n));
                return (j & 2) == 0 ? T.Evens(lo, hi) : T.Odds(lo, hi);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static unsafe void TransformOutput(in ConvJob job, int co, float* products, long xiStride, int* outputs, int count)
        {
            ref readonly var g = ref job.Geometry;
            int n = T.Count;
            // Aᵀ down M's columns into s (4 × 6 vectors), then along s's rows into y (4 × 4 vectors), both row-major.
            float* s = stackalloc float[24 * n];
            for (int c = 0; c < 6; c++)
            {
                float* column = products + c * xiStride;
                At(T.Load(column), T.Load(column + 6 * xiStride), T.Load(column + 12 * xiStride), T.Load(column + 18 * xiStride),
                    T.Load(column + 24 * xiStride), T.Load(column + 30 * xiStride), out var s0, out var s1, out var s2, out var s3);
                T.Store(s0, s + c * n);
                T.Store(s1, s + (6 + c) * n);
                T.Store(s2, s + (12 + c) * n);
                T.Store(s3, s + (18 + c) * n);
            }
            float* y = stackalloc float[16 * n];
            var bias = T.Broadcast(job.Weights.Bias[co]);
            for (int r = 0; r < 4; r++)
            {
                float* row = s + 6 * r * n;
                At(T.Load(row), T.Load(row + n), T.Load(row + 2 * n), T.Load(row + 3 * n), T.Load(row + 4 * n), T.Load(row + 5 * n),
                    out var y0, out var y1, out var y2, out var y3);
                T.Store(T.Add(y0, bias), y + 4 * r * n);
                T.Store(T.Add(y1, bias), y + (4 * r + 1) * n);
                T.Store(T.Add(y2, bias), y + (4 * r + 2) * n);
                T.Store(T.Add(y3, bias), y + (4 * r + 3) * n);
            }
            long plane = (long)g.Ho * g.Wo;
            if (count == n && g.Wo / 4 % (n / 2) == 0)
            {
                // Per output row, interleaving columns 0 with 2 and 1 with 3, then those two, lays each run's pixels
                // out contiguously: two vectors per run.
                long first = outputs[0] + co * plane, second = outputs[n / 2] + co * plane;
                TV addFirst = WinogradChannelAdd<T, TV>(job, first, co), addSecond = WinogradChannelAdd<T, TV>(job, second, co);
                for (int r = 0; r < 4; r++)
                {
                    float* row = y + 4 * r * n;
                    var p = T.InterleaveLower(T.Load(row), T.Load(row + 2 * n));
                    var q = T.InterleaveLower(T.Load(row + n), T.Load(row + 3 * n));
                    WinogradStoreRun<T, TV>(job, first + r * g.Wo, T.InterleaveLower(p, q), addFirst);
                    WinogradStoreRun<T, TV>(job, first + r * g.Wo + n, T.InterleaveUpper(p, q), addFirst);
                    p = T.InterleaveUpper(T.Load(row), T.Load(row + 2 * n));
                    q = T.InterleaveUpper(T.Load(row + n), T.Load(row + 3 * n));
                    WinogradStoreRun<T, TV>(job, second + r * g.Wo, T.InterleaveLower(p, q), addSecond);
                    WinogradStoreRun<T, TV>(job, second + r * g.Wo + n, T.InterleaveUpper(p, q), addSecond);
                }
                return;
            }
            WinogradStoreLanes(job, co, y, 4, n, outputs, count);
        }

        /// <summary>Aᵀ m for one 6-vector m.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void At(TV m0, TV m1, TV m2, TV m3, TV m4, TV m5, out TV y0, out TV y1, out TV y2, out TV y3)
        {
            var sum = T.Add(m1, m2);
            var difference = T.Subtract(m1, m2);
            y0 = T.Add(T.Add(T.Add(m0, sum), m3), m4);
            y1 = T.FusedMultiplyAdd(T.Broadcast(0.5f), m3, T.FusedMultiplyAdd(T.Broadcast(-2f), m4, difference));
            y2 = T.FusedMultiplyAdd(T.Broadcast(0.25f), m3, T.FusedMultiplyAdd(T.Broadcast(4f), m4, sum));
            y3 = T.FusedMultiplyAdd(T.Broadcast(0.125f), m3, T.FusedMultiplyAdd(T.Broadcast(-8f), m4, T.Add(difference, m5)));
        }
    }

    /// <summary>Column c of row r of a vector of tiles' patches, one tile per lane; offset = r's row within the plane.</summary>
    private interface IPatchColumns<TV> where TV : struct
    {
        TV Column(long offset, int c);
    }

    /// <summary>Any tiles: a gather per column (two 8-lane gathers on AVX-512, scalar loads on 128-bit).</summary>
    private readonly unsafe struct TileGather<T, TV>(float* source, int* lanes) : IPatchColumns<TV> where T : struct, ISimd<TV> where TV : struct
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public TV Column(long offset, int c) => T.Gather(source + offset + c, lanes);
    }

    /// <summary>
    /// A vector of tiles' transformed inputs: contiguous runs where the lanes are two half-vectors of consecutive tiles
    /// of one tile row (the tile row is a multiple of half a vector), else a gather with each lane's patch origin.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WinogradTransformInput<T, TV, TTile>(float* source, in ConvGeometry g, int ci0, int channels,
        int* origins, int count, float* v, long xiStride)
        where T : struct, ISimd<TV> where TV : struct where TTile : struct, IWinogradTile<T, TV>
    {
        int n = T.Count;
        if (count == n && g.W / TTile.Size % (n / 2) == 0)
        {
            TTile.TransformRuns(source + origins[0], source + origins[n / 2], g, ci0, channels, v, xiStride);
            return;
        }
        int* lanes = stackalloc int[n];
        for (int l = 0; l < n; l++) lanes[l] = origins[Math.Min(l, count - 1)];
        TTile.TransformInput(new TileGather<T, TV>(source, lanes), g, ci0, channels, v, xiStride);
    }

    /// <summary>
    /// The channel bias of output channel <paramref name="co"/> for the image holding output <paramref name="at"/>,
    /// broadcast (zero without one): looked up, with its division, once per run of a tile row, not per stored vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe TV WinogradChannelAdd<T, TV>(in ConvJob job, long at, int co) where T : struct, ISimd<TV> where TV : struct
    {
        ref readonly var g = ref job.Geometry;
        return job.ChannelBias == null ? T.Zero : T.Broadcast(job.ChannelBias[at / ((long)g.Cout * g.Ho * g.Wo) * g.Cout + co]);
    }

    /// <summary>
    /// A vector of contiguous outputs at <paramref name="at"/>, biased already, through the rest of the direct path's
    /// epilogue: + channel bias (<paramref name="add"/>, from <see cref="WinogradChannelAdd"/>), + residual, × scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void WinogradStoreRun<T, TV>(in ConvJob job, long at, TV v, TV add) where T : struct, ISimd<TV> where TV : struct
    {
        if (job.ChannelBias != null) v = T.Add(v, add);
        if (job.Residual != null) v = T.Add(v, T.Load(job.Residual + at));
        if (job.Scale != 1f) v = T.Multiply(v, T.Broadcast(job.Scale));
        T.Store(v, job.Y + at);
    }

    /// <summary>
    /// The same one lane at a time, for tiles that are not two runs: y holds the m×m tile's outputs row-major, each
    /// a vector of n lanes (y[(r·m + c)·n + lane]).
    /// </summary>
    private static unsafe void WinogradStoreLanes(in ConvJob job, int co, float* y, int m, int n, int* outputs, int count)
    {
        ref readonly var g = ref job.Geometry;
        long plane = (long)g.Ho * g.Wo;
        float scale = job.Scale;
        bool hasAdd = job.ChannelBias != null;
        for (int l = 0; l < count; l++)
        {
            long origin = outputs[l] + co * plane;
            float add = hasAdd ? job.ChannelBias[origin / ((long)g.Cout * plane) * g.Cout + co] : 0f;
            for (int r = 0; r < m; r++)
            {
                for (int c = 0; c < m; c++)
                {
                    long at = origin + r * g.Wo + c;
                    float value = y[(r * m + c) * n + l];
                    if (hasAdd) value += add;
                    if (job.Residual != null) value += job.Residual[at];
                    if (scale != 1f) value *= scale;
                    job.Y[at] = value;
                }
            }
        }
    }
}
