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

using ILGPU;

namespace Diffusion.Kernels.Gpu;

public struct AttentionParams
{
    public int Batch, Channels, Tokens, HeadDim;
    public float Scale;

    public readonly int OutputCount => Batch * Channels * Tokens;
}

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

    private static float Score(in AttentionParams p, ArrayView<float> qkv, long q, long k, int t, int key)
    {
        float s = 0f;
        for (int c = 0; c < p.HeadDim; c++) s += qkv[q + (long)c * p.Tokens + t] * qkv[k + (long)c * p.Tokens + key];
        return s * p.Scale;
    }
}
