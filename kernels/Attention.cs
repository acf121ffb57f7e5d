// Attention — the GPU twin of CpuBackend.Attention.
//
// Multi-head scaled dot-product attention over the T = H·W tokens of each image, reading q, k and v from the
// channel-blocked qkv tensor (N, 3C, H, W) the fused 1×1 projection writes: q = channels [0, C), k = [C, 2C),
// v = [2C, 3C); head h owns channels [h·d, (h+1)·d) of each. Token t of channel c sits at c·T + t.
//   y[n, h·d + c, t] = Σ_j softmax_j(q_t · k_j · scale) · v[c, j],   scale = 1/√d
// The softmax subtracts the row maximum, in float32.
//
// Versions (DIFFUSION_KERNEL_VERSION_attention=N):
//   1  Version1: one thread per output value (n, h·d + c, t). It walks the keys twice: once for the row maximum
//      of the scores, once for the exponentials, their sum and the weighted sum of v[c]. The d threads of one
//      query recompute the same scores; the lesson is the formula, not the speed.
//   2  Version2<TTile> (default): flash attention. A block owns TTile.Queries queries (16 or 32; 8 threads each)
//      and walks the keys in tiles of 32, keeping a running row maximum m, running sum l and an unnormalised output
//      row O in shared memory:
//        m' = max(m, max_j s_j);  p_j = exp(s_j − m');  l = l·exp(m − m') + Σ p_j;  O = O·exp(m − m') + P·V
//      so the T×T score matrix is never written to global memory, and K and V are read once per block of queries.
//      The head dimension goes through shared memory in chunks of 32, so any d works; O takes Queries·(d+1) floats
//      of dynamic shared memory (the +1 keeps column reads on distinct banks).
//   3  Version3 (opt-in half precision, never the default): the same online softmax with S = Q·Kᵀ and O += P·V on
//      tensor cores (TensorCores.Mma: mma.sync m16n8k16, half inputs, float32 accumulation; its C# twin runs on the
//      emulated device). q, k and v stay float32 in memory and are rounded to half as they are staged into shared
//      memory ([token][channel] for Q and K, [channel][key] for V, so each fragment register is one 32-bit load);
//      P is rounded to half for the second product. A block of 4 warps owns 64 queries (16 per warp) and 64 columns
//      of the head dimension: each warp keeps its rows' m, l and 16 × 64 slice of O in registers (8 accumulators;
//      ILGPU has no register arrays, so a block per 64 columns replaces the CUDA version's 256-wide register file,
//      and heads wider than 64 recompute S once per 64 columns). The S accumulators of two neighbouring 8-key
//      tiles are, element for element, the A fragment of P for a 16-key step, so P never touches shared memory.
//      Needs compute capability 8.0+. Rounding q, k, v and P to 11 significant bits: ~1e-3 normalised error.

using ILGPU;
using ILGPU.Runtime;

namespace Diffusion.Kernels.Gpu;

public struct AttentionParams
{
    public int Batch, Channels, Tokens, HeadDim;
    public float Scale;

    public readonly int OutputCount => Batch * Channels * Tokens;
}

/// <summary>Queries per block of attention version 2, fixed at compile time; a block has 8 threads per query.</summary>
public interface IAttentionTile
{
    int Queries { get; }
}

/// <summary>16 queries, 128 threads: small images, or GPUs with few SMs to fill.</summary>
public struct AttentionTile16 : IAttentionTile { public readonly int Queries => 16; }

/// <summary>32 queries, 256 threads: K and V are read once per 32 queries.</summary>
public struct AttentionTile32 : IAttentionTile { public readonly int Queries => 32; }

public static class Attention
{
    public static void Version1(Index1D index, AttentionParams p, ArrayView<float> qkv, ArrayView<float> y)
    {
        int t = index % p.Tokens;
        int channel = index / p.Tokens % p.Channels;
        int n = index / (p.Tokens * p.Channels);
        int head = channel / p.HeadDim;
        long q = ((long)n * 3 * p.Channels + (long)head * p.HeadDim) * p.Tokens;
        long k = q + (long)p.Channels * p.Tokens;
        long v = ((long)n * 3 * p.Channels + 2L * p.Channels + channel) * p.Tokens;

        float rowMax = float.NegativeInfinity;
        for (int key = 0; key < p.Tokens; key++) rowMax = MathF.Max(rowMax, Score(p, qkv, q, k, t, key));
        float sum = 0f, weighted = 0f;
        for (int key = 0; key < p.Tokens; key++)
        {
            float e = MathF.Exp(Score(p, qkv, q, k, t, key) - rowMax);
            sum += e;
            weighted += e * qkv[v + key];
        }
        y[index] = weighted / sum;
    }

    /// <summary>Keys per tile: one per lane, so a single warp updates a row's softmax.</summary>
    public const int KeyTile = 32;
    /// <summary>Head-dimension chunk staged in shared memory.</summary>
    public const int DimChunk = 32;
    /// <summary>Threads per query: each scores KeyTile / 8 keys.</summary>
    public const int ThreadsPerQuery = 8;

    public static KernelConfig Version2Launch<TTile>(in AttentionParams p) where TTile : struct, IAttentionTile
    {
        int bq = default(TTile).Queries;
        return new KernelConfig(new Index3D((p.Tokens + bq - 1) / bq, p.Channels / p.HeadDim, p.Batch), new Index3D(ThreadsPerQuery * bq, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(bq * (p.HeadDim + 1)));
    }

    // Thread roles: scores: query tid/8, keys tid%8 + 8j (j < 4); softmax: warp w updates rows w, w + warps, ...
    // with lane = key; P·V: lane = head-dimension column of the chunk, the same rows as in the softmax.
    public static void Version2<TTile>(AttentionParams p, ArrayView<float> qkv, ArrayView<float> y) where TTile : struct, IAttentionTile
    {
        int bq = default(TTile).Queries;
        int threads = ThreadsPerQuery * bq;
        int warps = threads / Warp.WarpSize;
        var oRows = SharedMemory.GetDynamic<float>();                   // [bq][d + 1], unnormalised output
        var qTile = SharedMemory.Allocate<float>(DimChunk * default(TTile).Queries);   // [c][query]
        var kTile = SharedMemory.Allocate<float>(DimChunk * KeyTile);                  // [c][key]
        var vTile = SharedMemory.Allocate<float>(KeyTile * (DimChunk + 1));            // [key][c], padded
        var pTile = SharedMemory.Allocate<float>(default(TTile).Queries * (KeyTile + 1)); // [query][key], padded
        var rowMax = SharedMemory.Allocate<float>(default(TTile).Queries);
        var rowSum = SharedMemory.Allocate<float>(default(TTile).Queries);
        var rowRescale = SharedMemory.Allocate<float>(default(TTile).Queries);

        int q0 = Grid.IdxX * bq;
        int head = Grid.IdxY, n = Grid.IdxZ;
        int tid = Group.IdxX, lane = Warp.LaneIdx, warp = Warp.WarpIdx;
        int tokens = p.Tokens, headDim = p.HeadDim, oStride = headDim + 1, pStride = KeyTile + 1, vStride = DimChunk + 1;
        long q = ((long)n * 3 * p.Channels + (long)head * headDim) * tokens;
        long k = q + (long)p.Channels * tokens;
        long v = k + (long)p.Channels * tokens;

        for (int e = tid; e < bq * oStride; e += threads) oRows[e] = 0f;
        if (tid < bq)
        {
            rowMax[tid] = float.NegativeInfinity;
            rowSum[tid] = 0f;
        }

        int scoreRow = tid / ThreadsPerQuery, scoreCol = tid % ThreadsPerQuery;
        for (int key0 = 0; key0 < tokens; key0 += KeyTile)
        {
            // s = q·k over the head dimension, one chunk at a time.
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int d0 = 0; d0 < headDim; d0 += DimChunk)
            {
                Group.Barrier(); // the previous chunk's readers are done
                for (int e = tid; e < DimChunk * bq; e += threads)
                {
                    int c = e / bq, i = e % bq;
                    qTile[e] = d0 + c < headDim && q0 + i < tokens ? qkv[q + (long)(d0 + c) * tokens + q0 + i] : 0f;
                }
                for (int e = tid; e < DimChunk * KeyTile; e += threads)
                {
                    int c = e / KeyTile, j = e % KeyTile;
                    kTile[e] = d0 + c < headDim && key0 + j < tokens ? qkv[k + (long)(d0 + c) * tokens + key0 + j] : 0f;
                }
                Group.Barrier();
                for (int c = 0; c < DimChunk; c++)
                {
                    float qv = qTile[c * bq + scoreRow];
                    int kr = c * KeyTile + scoreCol;
                    s0 += qv * kTile[kr];
                    s1 += qv * kTile[kr + 8];
                    s2 += qv * kTile[kr + 16];
                    s3 += qv * kTile[kr + 24];
                }
            }
            int pr = scoreRow * pStride + scoreCol;
            pTile[pr] = key0 + scoreCol < tokens ? s0 * p.Scale : float.NegativeInfinity;
            pTile[pr + 8] = key0 + scoreCol + 8 < tokens ? s1 * p.Scale : float.NegativeInfinity;
            pTile[pr + 16] = key0 + scoreCol + 16 < tokens ? s2 * p.Scale : float.NegativeInfinity;
            pTile[pr + 24] = key0 + scoreCol + 24 < tokens ? s3 * p.Scale : float.NegativeInfinity;
            Group.Barrier();

            // Online softmax: fold this tile into each row's running maximum and sum. Key 0 is in the first tile, so
            // the maximum is finite from then on and exp(−∞ − max) = 0 masks the keys past the end.
            for (int r = warp; r < bq; r += warps)
            {
                float score = pTile[r * pStride + lane];
                float oldMax = rowMax[r];
                float newMax = MathF.Max(oldMax, WarpReductions.Max(score));
                float e = MathF.Exp(score - newMax);
                float tileSum = WarpReductions.Sum(e);
                pTile[r * pStride + lane] = e;
                Warp.Barrier(); // every lane has read rowMax[r] before lane 0 replaces it
                if (lane == 0)
                {
                    float rescale = MathF.Exp(oldMax - newMax);
                    rowRescale[r] = rescale;
                    rowSum[r] = rowSum[r] * rescale + tileSum;
                    rowMax[r] = newMax;
                }
            }

            // O = O·rescale + P·V, one head-dimension chunk of V at a time.
            for (int d0 = 0; d0 < headDim; d0 += DimChunk)
            {
                Group.Barrier(); // pTile and rowRescale are complete; the previous vTile is consumed
                for (int e = tid; e < KeyTile * DimChunk; e += threads)
                {
                    int c = e / KeyTile, j = e % KeyTile; // j fastest: consecutive tokens, coalesced
                    vTile[j * vStride + c] = d0 + c < headDim && key0 + j < tokens ? qkv[v + (long)(d0 + c) * tokens + key0 + j] : 0f;
                }
                Group.Barrier();
                if (d0 + lane < headDim)
                {
                    for (int r = warp; r < bq; r += warps)
                    {
                        int rp = r * pStride;
                        float acc = 0f;
                        for (int j = 0; j < KeyTile; j += 4)
                        {
                            acc += pTile[rp + j] * vTile[j * vStride + lane];
                            acc += pTile[rp + j + 1] * vTile[(j + 1) * vStride + lane];
                            acc += pTile[rp + j + 2] * vTile[(j + 2) * vStride + lane];
                            acc += pTile[rp + j + 3] * vTile[(j + 3) * vStride + lane];
                        }
                        int o = r * oStride + d0 + lane;
                        oRows[o] = oRows[o] * rowRescale[r] + acc;
                    }
                }
            }
            Group.Barrier(); // pTile is rewritten by the next key tile
        }

        long outBase = ((long)n * p.Channels + (long)head * headDim) * tokens;
        for (int e = tid; e < bq * headDim; e += threads)
        {
            int c = e / bq, r = e % bq; // r fastest: consecutive tokens, coalesced stores
            if (q0 + r < tokens) y[outBase + (long)c * tokens + q0 + r] = oRows[r * oStride + c] / rowSum[r];
        }
    }

    /// <summary>Version 3: queries per block (16 per warp), threads, keys per tile, head-dimension columns of O per
    /// block, and the head-dimension chunk staged for S = Q·Kᵀ.</summary>
    public const int Version3Queries = 64, Version3Threads = 128, Version3Keys = 32, Version3Columns = 64, Version3Chunk = 64;

    // Shared row lengths in words (half pairs) plus 4 words of padding: strides of 4 mod 8 words put the 8 rows ×
    // 4 words of a fragment load on 32 distinct banks.
    private const int Version3QkWords = Version3Chunk / 2 + 4, Version3VWords = Version3Keys / 2 + 4;

    public static KernelConfig Version3Launch(in AttentionParams p)
    {
        int columnBlocks = (p.HeadDim + Version3Columns - 1) / Version3Columns;
        return new KernelConfig(new Index3D((p.Tokens + Version3Queries - 1) / Version3Queries, p.Channels / p.HeadDim, p.Batch * columnBlocks),
            new Index3D(Version3Threads, 1, 1));
    }

    public static void Version3(AttentionParams p, ArrayView<float> qkv, ArrayView<float> y)
    {
        var qTile = SharedMemory.Allocate<uint>(Version3Queries * Version3QkWords); // [query][channel pair]
        var kTile = SharedMemory.Allocate<uint>(Version3Keys * Version3QkWords);    // [key][channel pair]
        var vTile = SharedMemory.Allocate<uint>(Version3Columns * Version3VWords);  // [channel][key pair]
        int tokens = p.Tokens, headDim = p.HeadDim;
        int dPad = (headDim + 15) / 16 * 16; // one mma k-step is 16 channels; the padding is zeros
        int columnBlocks = (headDim + Version3Columns - 1) / Version3Columns;
        int n = Grid.IdxZ / columnBlocks;
        int c0 = Grid.IdxZ % columnBlocks * Version3Columns;
        int q0 = Grid.IdxX * Version3Queries;
        int head = Grid.IdxY;
        int tid = Group.IdxX, warp = tid / Warp.WarpSize, lane = tid % Warp.WarpSize;
        int g = lane / 4, t = lane % 4, row0 = warp * 16;
        long q = ((long)n * 3 * p.Channels + (long)head * headDim) * tokens;
        long k = q + (long)p.Channels * tokens;
        long v = k + (long)p.Channels * tokens;

        // This lane's rows are g and g + 8 of the warp's 16: accumulator elements C0, C1 belong to the first, C2, C3
        // to the second. rowSum is this lane's share; the quad's four shares are added at the end.
        Accumulator o0 = default, o1 = default, o2 = default, o3 = default, o4 = default, o5 = default, o6 = default, o7 = default;
        float max0 = float.NegativeInfinity, max1 = float.NegativeInfinity, sum0 = 0f, sum1 = 0f;

        for (int key0 = 0; key0 < tokens; key0 += Version3Keys)
        {
            Group.Barrier(); // every warp is done with the previous tiles
            for (int e = tid; e < Version3Columns * (Version3Keys / 2); e += Version3Threads)
            {
                int c = e / (Version3Keys / 2), pair = e % (Version3Keys / 2); // consecutive lanes, consecutive keys
                int channel = c0 + c, j = key0 + 2 * pair;
                float lo = channel < headDim && j < tokens ? qkv[v + (long)channel * tokens + j] : 0f;
                float hi = channel < headDim && j + 1 < tokens ? qkv[v + (long)channel * tokens + j + 1] : 0f;
                vTile[c * Version3VWords + pair] = TensorCores.PackHalf2(lo, hi);
            }

            // S = Q·Kᵀ for the warp's 16 queries and the tile's 32 keys (four 8-key accumulators).
            Accumulator s0 = default, s1 = default, s2 = default, s3 = default;
            for (int d0 = 0; d0 < dPad; d0 += Version3Chunk)
            {
                if (d0 > 0) Group.Barrier(); // the previous chunk's readers are done
                StageRows(qTile, Version3Queries, qkv, q, q0, tokens, headDim, d0);
                StageRows(kTile, Version3Keys, qkv, k, key0, tokens, headDim, d0);
                Group.Barrier();
                for (int kk = 0; kk < Version3Chunk && d0 + kk < dPad; kk += 16)
                {
                    int word = kk / 2 + t;
                    var a = TensorCores.LoadA(qTile, Version3QkWords, row0 + g, word);
                    s0 = TensorCores.Mma(s0, a, TensorCores.LoadB(kTile, Version3QkWords, g, word));
                    s1 = TensorCores.Mma(s1, a, TensorCores.LoadB(kTile, Version3QkWords, 8 + g, word));
                    s2 = TensorCores.Mma(s2, a, TensorCores.LoadB(kTile, Version3QkWords, 16 + g, word));
                    s3 = TensorCores.Mma(s3, a, TensorCores.LoadB(kTile, Version3QkWords, 24 + g, word));
                }
            }

            // Online softmax in float32. Element C0 / C1 of s_j is this lane's first row against key key0 + 8j + 2t / + 1;
            // the row's other keys sit in the three other lanes of the quad, two xor-shuffles away. Key 0 is in the
            // first tile, so the maximum is finite from then on and exp(−∞ − max) = 0 masks the keys past the end.
            int key = key0 + 2 * t;
            s0 = Masked(s0, key, tokens, p.Scale);
            s1 = Masked(s1, key + 8, tokens, p.Scale);
            s2 = Masked(s2, key + 16, tokens, p.Scale);
            s3 = Masked(s3, key + 24, tokens, p.Scale);
            float new0 = MathF.Max(max0, QuadMax(MathF.Max(MathF.Max(MathF.Max(s0.C0, s0.C1), MathF.Max(s1.C0, s1.C1)), MathF.Max(MathF.Max(s2.C0, s2.C1), MathF.Max(s3.C0, s3.C1)))));
            float new1 = MathF.Max(max1, QuadMax(MathF.Max(MathF.Max(MathF.Max(s0.C2, s0.C3), MathF.Max(s1.C2, s1.C3)), MathF.Max(MathF.Max(s2.C2, s2.C3), MathF.Max(s3.C2, s3.C3)))));
            float rescale0 = MathF.Exp(max0 - new0), rescale1 = MathF.Exp(max1 - new1);
            max0 = new0;
            max1 = new1;
            s0 = Exponentials(s0, new0, new1);
            s1 = Exponentials(s1, new0, new1);
            s2 = Exponentials(s2, new0, new1);
            s3 = Exponentials(s3, new0, new1);
            sum0 = sum0 * rescale0 + s0.C0 + s0.C1 + s1.C0 + s1.C1 + s2.C0 + s2.C1 + s3.C0 + s3.C1;
            sum1 = sum1 * rescale1 + s0.C2 + s0.C3 + s1.C2 + s1.C3 + s2.C2 + s2.C3 + s3.C2 + s3.C3;
            o0 = Rescaled(o0, rescale0, rescale1);
            o1 = Rescaled(o1, rescale0, rescale1);
            o2 = Rescaled(o2, rescale0, rescale1);
            o3 = Rescaled(o3, rescale0, rescale1);
            o4 = Rescaled(o4, rescale0, rescale1);
            o5 = Rescaled(o5, rescale0, rescale1);
            o6 = Rescaled(o6, rescale0, rescale1);
            o7 = Rescaled(o7, rescale0, rescale1);

            // O += P·V: keys 0–15 of the tile (P from s0, s1), then 16–31 (s2, s3); channel block j = columns 8j..8j+7.
            var pa = AsFragment(s0, s1);
            var pb = AsFragment(s2, s3);
            o0 = Pv(o0, pa, pb, vTile, g, t);
            o1 = Pv(o1, pa, pb, vTile, 8 + g, t);
            o2 = Pv(o2, pa, pb, vTile, 16 + g, t);
            o3 = Pv(o3, pa, pb, vTile, 24 + g, t);
            o4 = Pv(o4, pa, pb, vTile, 32 + g, t);
            o5 = Pv(o5, pa, pb, vTile, 40 + g, t);
            o6 = Pv(o6, pa, pb, vTile, 48 + g, t);
            o7 = Pv(o7, pa, pb, vTile, 56 + g, t);
        }

        sum0 += Warp.ShuffleXor(sum0, 1);
        sum0 += Warp.ShuffleXor(sum0, 2);
        sum1 += Warp.ShuffleXor(sum1, 1);
        sum1 += Warp.ShuffleXor(sum1, 2);
        long outBase = ((long)n * p.Channels + (long)head * headDim) * tokens;
        int query = q0 + row0 + g, column = c0 + 2 * t;
        StoreRows(p, y, outBase, query, column, o0, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 8, o1, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 16, o2, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 24, o3, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 32, o4, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 40, o5, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 48, o6, sum0, sum1);
        StoreRows(p, y, outBase, query, column + 56, o7, sum0, sum1);
    }

    /// <summary>
    /// Stages tokens [token0, token0 + rows) × channels [d0, d0 + Version3Chunk) of one head's d × T matrix (q or k)
    /// as half pairs tile[row][channel pair], zero past the last token and past the head dimension. Each warp pass
    /// covers 8 tokens × 4 channel pairs: the global reads are 32-byte sectors (8 neighbouring tokens of a channel)
    /// and the stores land on 32 distinct banks.
    /// </summary>
    private static void StageRows(ArrayView<uint> tile, int rows, ArrayView<float> qkv, long source, int token0, int tokens, int headDim, int d0)
    {
        for (int e = Group.IdxX; e < rows * (Version3Chunk / 2); e += Version3Threads)
        {
            int pass = e / Warp.WarpSize;
            int row = pass % (rows / 8) * 8 + e % 8;
            int pair = pass / (rows / 8) * 4 + e % Warp.WarpSize / 8;
            int c = d0 + 2 * pair, token = token0 + row;
            float lo = token < tokens && c < headDim ? qkv[source + (long)c * tokens + token] : 0f;
            float hi = token < tokens && c + 1 < headDim ? qkv[source + (long)(c + 1) * tokens + token] : 0f;
            tile[row * Version3QkWords + pair] = TensorCores.PackHalf2(lo, hi);
        }
    }

    /// <summary>Scaled scores of one 8-key accumulator; −∞ for keys past the end (C0, C2 are key, C1, C3 key + 1).</summary>
    private static Accumulator Masked(Accumulator s, int key, int tokens, float scale) => new()
    {
        C0 = key < tokens ? s.C0 * scale : float.NegativeInfinity,
        C1 = key + 1 < tokens ? s.C1 * scale : float.NegativeInfinity,
        C2 = key < tokens ? s.C2 * scale : float.NegativeInfinity,
        C3 = key + 1 < tokens ? s.C3 * scale : float.NegativeInfinity,
    };

    /// <summary>The maximum over the four lanes of a quad (the lanes holding one row).</summary>
    private static float QuadMax(float v)
    {
        v = MathF.Max(v, Warp.ShuffleXor(v, 1));
        return MathF.Max(v, Warp.ShuffleXor(v, 2));
    }

    private static Accumulator Exponentials(Accumulator s, float max0, float max1) => new()
    {
        C0 = MathF.Exp(s.C0 - max0),
        C1 = MathF.Exp(s.C1 - max0),
        C2 = MathF.Exp(s.C2 - max1),
        C3 = MathF.Exp(s.C3 - max1),
    };

    private static Accumulator Rescaled(Accumulator o, float rescale0, float rescale1) => new()
    {
        C0 = o.C0 * rescale0,
        C1 = o.C1 * rescale0,
        C2 = o.C2 * rescale1,
        C3 = o.C3 * rescale1,
    };

    /// <summary>P for a 16-key step as an A fragment: keys 2t.. of the first 8-key accumulator, 2t + 8.. of the second.</summary>
    private static FragmentA AsFragment(Accumulator first, Accumulator second) => new()
    {
        A0 = TensorCores.PackHalf2(first.C0, first.C1),
        A1 = TensorCores.PackHalf2(first.C2, first.C3),
        A2 = TensorCores.PackHalf2(second.C0, second.C1),
        A3 = TensorCores.PackHalf2(second.C2, second.C3),
    };

    /// <summary>o += P·V over the tile's 32 keys for the 8 channels whose column (tile row of V) is column.</summary>
    private static Accumulator Pv(Accumulator o, FragmentA first16, FragmentA second16, ArrayView<uint> vTile, int column, int t)
    {
        o = TensorCores.Mma(o, first16, TensorCores.LoadB(vTile, Version3VWords, column, t));
        return TensorCores.Mma(o, second16, TensorCores.LoadB(vTile, Version3VWords, column, 8 + t));
    }

    /// <summary>One accumulator's outputs: queries query (C0, C1) and query + 8 (C2, C3), channels column and column + 1.</summary>
    private static void StoreRows(in AttentionParams p, ArrayView<float> y, long outBase, int query, int column, Accumulator o, float sum0, float sum1)
    {
        int tokens = p.Tokens;
        if (column < p.HeadDim && query < tokens) y[outBase + (long)column * tokens + query] = o.C0 / sum0;
        if (column + 1 < p.HeadDim && query < tokens) y[outBase + (long)(column + 1) * tokens + query] = o.C1 / sum0;
        if (column < p.HeadDim && query + 8 < tokens) y[outBase + (long)column * tokens + query + 8] = o.C2 / sum1;
        if (column + 1 < p.HeadDim && query + 8 < tokens) y[outBase + (long)(column + 1) * tokens + query + 8] = o.C3 / sum1;
    }

    private static float Score(in AttentionParams p, ArrayView<float> qkv, long q, long k, int t, int key)
    {
        float s = 0f;
        for (int c = 0; c < p.HeadDim; c++) s += qkv[q + (long)c * p.Tokens + t] * qkv[k + (long)c * p.Tokens + key];
        return s * p.Scale;
    }
}
