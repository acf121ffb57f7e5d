using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Multi-head attention as two Sgemm passes per block of queries, with the scores held key-major (Sᵀ: one row
/// per key, queries along the row). That orientation lets both products read q, k and v straight from the
/// channel-major qkv layout, makes the softmax a column-wise max/exp/sum vectorised across queries, and writes
/// the output back channel-major. Only one block of QueryBlock (two micro-kernel tiles) query columns of scores exists
/// at a time.
/// Phase 1 copies each head's k (zero-padded) and vᵀ once, in slices of channels; phase 2 runs (image, head,
/// query block) tasks.
/// </summary>
public sealed partial class CpuBackend
{
    /// <summary>Channels of one head one staging task copies.</summary>
    private const int StageChannels = 32;

    private readonly Workspace _attentionKeys = new();
    private readonly Workspace _attentionValues = new();

    [ThreadStatic] private static Workspace? t_attentionQueries;
    [ThreadStatic] private static Workspace? t_attentionScores;
    [ThreadStatic] private static Workspace? t_attentionOutput;

    public unsafe void Attention(DeviceTensor qkv, DeviceTensor y, int heads)
    {
        var qt = Mine(qkv, nameof(qkv));
        var yt = Mine(y, nameof(y));
        int channels = OpContract.Attention(qkv, y, heads);

        switch (Tier)
        {
            case CpuTier.Avx512: Attention<Simd512, Vector512<float>>(qt, yt, heads); break;
            case CpuTier.Avx2: Attention<Simd256, Vector256<float>>(qt, yt, heads); break;
            default: Attention<Simd128, Vector128<float>>(qt, yt, heads); break;
        }
    }

    private unsafe void Attention<T, TV>(CpuTensor qt, CpuTensor yt, int heads) where T : struct, ISimd<TV> where TV : struct
    {
        int channels = qt.C / 3;
        var g = new AttentionGeometry(qt.N, heads, channels / heads, qt.H * qt.W, T.MR, 2 * T.NR);
        long pairs = (long)g.N * g.Heads;
        var job = (Qkv: (nint)qt.Pointer, Y: (nint)yt.Pointer,
            Keys: (nint)_attentionKeys.Floats(pairs * g.HeadDim * g.KeysPadded),
            Values: (nint)_attentionValues.Floats(pairs * g.KeysPadded * g.HeadDimPadded));
        // Staging is cut by channels too: at batch 1 there is one head, and one thread transposing all of v took a
        // tenth of the attention.
        int slices = (g.HeadDim + StageChannels - 1) / StageChannels;
        For((int)pairs * slices, task => AttentionStage(g, task / slices, task % slices * StageChannels,
            (float*)job.Qkv, (float*)job.Keys, (float*)job.Values));
        For((int)pairs * g.QueryBlocks, task => AttentionBlock<T, TV>(g, task, (float*)job.Qkv, (float*)job.Keys, (float*)job.Values, (float*)job.Y));
    }

    /// <summary>
    /// Copies channels [c0, c0 + StageChannels) of head (n, h)'s keys into rows padded to whole MR blocks, and
    /// transposes the same channels of its values into vᵀ. vᵀ's padding is left as it is: P·V reads only its first
    /// Tokens rows, and its padding columns only feed output rows past the head dimension, which are never stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AttentionStage(in AttentionGeometry g, int pair, int c0, float* qkv, float* keys, float* values)
    {
        int c1 = Math.Min(g.HeadDim, c0 + StageChannels);
        float* k = g.Channel(qkv, pair, block: 1);
        float* v = g.Channel(qkv, pair, block: 2);
        float* kDst = keys + (long)pair * g.HeadDim * g.KeysPadded;
        float* vDst = values + (long)pair * g.KeysPadded * g.HeadDimPadded;
        for (int c = c0; c < c1; c++)
        {
            var row = new Span<float>(kDst + (long)c * g.KeysPadded, g.KeysPadded);
            new ReadOnlySpan<float>(k + (long)c * g.Tokens, g.Tokens).CopyTo(row);
            row[g.Tokens..].Clear();
        }
        for (int j = 0; j < g.Tokens; j++)
        {
            float* dst = vDst + (long)j * g.HeadDimPadded;
            for (int c = c0; c < c1; c++) dst[c] = v[(long)c * g.Tokens + j];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AttentionBlock<T, TV>(in AttentionGeometry g, int task, float* qkv, float* keys, float* values, float* y)
        where T : struct, ISimd<TV> where TV : struct
    {
        int MR = T.MR, NR = T.NR, QueryBlock = g.QueryBlock;
        int pair = task / g.QueryBlocks;
        int i0 = task % g.QueryBlocks * QueryBlock;
        int count = Math.Min(QueryBlock, g.Tokens - i0);

        // q block, channel-major, zero past the last token: the B operand of Sᵀ = K·Q.
        float* q = (t_attentionQueries ??= new()).Floats((long)g.HeadDim * QueryBlock);
        float* qSrc = g.Channel(qkv, pair, block: 0) + i0;
        for (int c = 0; c < g.HeadDim; c++)
        {
            var row = new Span<float>(q + (long)c * QueryBlock, QueryBlock);
            new ReadOnlySpan<float>(qSrc + (long)c * g.Tokens, count).CopyTo(row);
            row[count..].Clear();
        }

        float* scores = (t_attentionScores ??= new()).Floats((long)g.KeysPadded * QueryBlock);
        float* k = keys + (long)pair * g.HeadDim * g.KeysPadded;
        for (int mb = 0; mb < g.KeysPadded; mb += MR)
        {
            for (int col = 0; col < QueryBlock; col += NR)
                Sgemm.MicroKernel<T, TV>(g.HeadDim, k + mb, g.KeysPadded, q + col, QueryBlock, scores + (long)mb * QueryBlock + col, QueryBlock, false);
        }

        Span<float> inverseSums = stackalloc float[QueryBlock];
        SoftmaxColumns<T, TV>(scores, QueryBlock, g.Tokens, 1f / MathF.Sqrt(g.HeadDim), inverseSums);

        float* output = (t_attentionOutput ??= new()).Floats((long)g.HeadDimPadded * QueryBlock);
        float* v = values + (long)pair * g.KeysPadded * g.HeadDimPadded;
        for (int mb = 0; mb < g.HeadDimPadded; mb += MR)
        {
            for (int col = 0; col < QueryBlock; col += NR)
                Sgemm.MicroKernel<T, TV>(g.Tokens, v + mb, g.HeadDimPadded, scores + col, QueryBlock, output + (long)mb * QueryBlock + col, QueryBlock, false);
        }

        float* yHead = y + ((long)(pair / g.Heads) * g.Heads * g.HeadDim + (long)(pair % g.Heads) * g.HeadDim) * g.Tokens + i0;
        for (int c = 0; c < g.HeadDim; c++)
        {
            float* src = output + (long)c * QueryBlock;
            float* dst = yHead + (long)c * g.Tokens;
            for (int i = 0; i < count; i++) dst[i] = src[i] * inverseSums[i];
        }
    }

    /// <summary>
    /// Turns each column of Sᵀ (one query) into exp(scale·s − max) in place, over the first <paramref name="keys"/>
    /// rows, and returns 1/Σ per column; normalising the output afterwards costs d multiplies per query instead of T.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void SoftmaxColumns<T, TV>(float* scores, int queryBlock, int keys, float scale, Span<float> inverseSums)
        where T : struct, ISimd<TV> where TV : struct
    {
        var vscale = T.Broadcast(scale);
        fixed (float* inverse = inverseSums)
        {
            for (int col = 0; col < queryBlock; col += T.Count)
            {
                float* s = scores + col;
                var max = T.Broadcast(float.NegativeInfinity);
                for (int j = 0; j < keys; j++) max = T.Max(max, T.Multiply(T.Load(s + (long)j * queryBlock), vscale));
                var sum = T.Zero;
                for (int j = 0; j < keys; j++)
                {
                    var e = VectorExp.Exp<T, TV>(T.Subtract(T.Multiply(T.Load(s + (long)j * queryBlock), vscale), max));
                    T.Store(e, s + (long)j * queryBlock);
                    sum = T.Add(sum, e);
                }
                T.Store(T.Divide(T.Broadcast(1f), sum), inverse + col);
            }
        }
    }

    /// <summary>Shapes of one Attention call; keys and head channels are padded to the tier's MR, queries blocked by QueryBlock.</summary>
    private readonly record struct AttentionGeometry(int N, int Heads, int HeadDim, int Tokens, int MR, int QueryBlock)
    {
        public int KeysPadded => (Tokens + MR - 1) / MR * MR;

        public int HeadDimPadded => (HeadDim + MR - 1) / MR * MR;

        public int QueryBlocks => (Tokens + QueryBlock - 1) / QueryBlock;

        /// <summary>Channel 0 of head (n, h) in q (block 0), k (1) or v (2).</summary>
        public unsafe float* Channel(float* qkv, int pair, int block)
        {
            int n = pair / Heads, h = pair % Heads;
            int channels = Heads * HeadDim;
            return qkv + ((long)n * 3 * channels + (long)block * channels + (long)h * HeadDim) * Tokens;
        }
    }
}
