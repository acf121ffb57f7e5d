// attention.cu — Attention, the CUDA twin of CpuBackend.Attention.
//
// Multi-head scaled dot-product attention over the T = H·W tokens of each image, reading q, k and v from the
// channel-blocked qkv tensor (N, 3C, H, W) the fused 1×1 projection writes: q = channels [0, C), k = [C, 2C),
// v = [2C, 3C); head h owns channels [h·d, (h+1)·d) of each. Token t of channel c sits at c·T + t, so a head's
// q is a d × T matrix and neighbouring tokens are neighbouring floats.
//   y[n, h·d + c, t] = Σ_j softmax_j(q_t · k_j · scale) · v[c, j],   scale = 1/√d (host computes it)
// The softmax subtracts the row maximum and uses IEEE expf (no fast-math).
//
// Versions (DIFFUSION_KERNEL_VERSION_attention=1|2):
//   1  attention_v1: one block per query. Its T scores go to shared memory, the block reduces the row maximum
//      and the sum of exponentials, then each thread produces output channels. Simple, but every block reads
//      all of K and V, once per query.
//   2  attention_v2_q16 / _q32 (default; the host picks 32 or 16 queries per block from the device's SM count
//      and shared memory): flash attention. A block owns BQ queries and walks the keys in tiles of 32, keeping
//      a running row maximum m, running sum l and an unnormalised output row O in shared memory:
//        m' = max(m, max_j s_j);  p_j = exp(s_j − m');  l = l·exp(m − m') + Σ p_j;  O = O·exp(m − m') + P·V
//      so the T×T score matrix is never written to global memory, and K and V are read once per BQ queries.
//      The head dimension is processed in chunks of 32, so any d works; O needs BQ·(d+1) floats of dynamic
//      shared memory (the +1 pad keeps column reads on distinct banks).

__device__ __forceinline__ float neg_infinity() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Block-wide reduction (sum or max) returned to every thread; scratch holds one float per warp.
template <bool IS_MAX>
__device__ float block_reduce(float v, float* scratch)
{
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    v = IS_MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0)
    {
        const float identity = IS_MAX ? neg_infinity() : 0.0f;
        v = lane < warps ? scratch[lane] : identity;
        v = IS_MAX ? warp_max(v) : warp_sum(v);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    const float total = scratch[0];
    __syncthreads(); // scratch is reused by the next call
    return total;
}

extern "C" __global__ void attention_v1(const float* __restrict__ qkv, float* __restrict__ y, int channels, int tokens,
                                        int head_dim, float scale)
{
    extern __shared__ float scores[]; // tokens floats: this query against every key
    __shared__ float scratch[32];
    const int t = blockIdx.x;
    const int head = blockIdx.y;
    const int n = blockIdx.z;
    const float* q = qkv + ((size_t)n * 3 * channels + (size_t)head * head_dim) * tokens;
    const float* k = q + (size_t)channels * tokens;
    const float* v = k + (size_t)channels * tokens;

    float local_max = neg_infinity();
    for (int key = threadIdx.x; key < tokens; key += blockDim.x)
    {
        float s = 0.0f;
        for (int c = 0; c < head_dim; c++) s += q[(size_t)c * tokens + t] * k[(size_t)c * tokens + key];
        s *= scale;
        scores[key] = s;
        local_max = fmaxf(local_max, s);
    }
    const float row_max = block_reduce<true>(local_max, scratch);

    float local_sum = 0.0f;
    for (int key = threadIdx.x; key < tokens; key += blockDim.x)
    {
        const float p = expf(scores[key] - row_max);
        scores[key] = p;
        local_sum += p;
    }
    const float row_sum = block_reduce<false>(local_sum, scratch); // its barriers also publish scores[]

    for (int c = threadIdx.x; c < head_dim; c += blockDim.x)
    {
        float o = 0.0f;
        for (int key = 0; key < tokens; key++) o += scores[key] * v[(size_t)c * tokens + key];
        y[((size_t)n * channels + (size_t)head * head_dim + c) * tokens + t] = o / row_sum;
    }
}

namespace attention_tiling
{
constexpr int KT = 32; // keys per tile: one per lane, so a single warp updates a row's softmax
constexpr int DC = 32; // head-dimension chunk staged in shared memory
}

// BQ queries per block, 8·BQ threads. Thread roles:
//   scores: query tid/8, keys tid%8 + 8j (j < 4)
//   softmax: warp w updates rows w, w + BQ/4, ... (4 rows), lane = key
//   P·V: lane = head-dim column of the chunk, the same 4 rows as in the softmax
template <int BQ>
__device__ __forceinline__ void attention_flash(const float* __restrict__ qkv, float* __restrict__ y, int channels,
                                                int tokens, int head_dim, float scale)
{
    using namespace attention_tiling;
    constexpr int THREADS = 8 * BQ;
    constexpr int WARPS = THREADS / 32;
    extern __shared__ float o_rows[]; // [BQ][head_dim + 1], unnormalised output
    __shared__ float q_tile[DC][BQ];
    __shared__ float k_tile[DC][KT];
    __shared__ float v_tile[KT][DC + 1];
    __shared__ float p_tile[BQ][KT + 1];
    __shared__ float row_max[BQ];
    __shared__ float row_sum[BQ];
    __shared__ float row_rescale[BQ];

    const int q0 = blockIdx.x * BQ;
    const int head = blockIdx.y;
    const int n = blockIdx.z;
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int o_stride = head_dim + 1;
    const float* q = qkv + ((size_t)n * 3 * channels + (size_t)head * head_dim) * tokens;
    const float* k = q + (size_t)channels * tokens;
    const float* v = k + (size_t)channels * tokens;

    for (int e = tid; e < BQ * o_stride; e += THREADS) o_rows[e] = 0.0f;
    if (tid < BQ)
    {
        row_max[tid] = neg_infinity();
        row_sum[tid] = 0.0f;
    }

    const int score_row = tid >> 3;
    const int score_col = tid & 7;
    for (int key0 = 0; key0 < tokens; key0 += KT)
    {
        // s = q·k over the head dimension, one 32-deep chunk at a time.
        float s[KT / 8];
#pragma unroll
        for (int j = 0; j < KT / 8; j++) s[j] = 0.0f;
        for (int d0 = 0; d0 < head_dim; d0 += DC)
        {
            __syncthreads(); // the previous chunk's readers are done
            for (int e = tid; e < DC * BQ; e += THREADS)
            {
                const int c = e / BQ, i = e % BQ;
                q_tile[c][i] = (d0 + c < head_dim && q0 + i < tokens) ? q[(size_t)(d0 + c) * tokens + q0 + i] : 0.0f;
            }
            for (int e = tid; e < DC * KT; e += THREADS)
            {
                const int c = e / KT, j = e % KT;
                k_tile[c][j] = (d0 + c < head_dim && key0 + j < tokens) ? k[(size_t)(d0 + c) * tokens + key0 + j] : 0.0f;
            }
            __syncthreads();
#pragma unroll 8
            for (int c = 0; c < DC; c++)
            {
                const float qv = q_tile[c][score_row];
#pragma unroll
                for (int j = 0; j < KT / 8; j++) s[j] = fmaf(qv, k_tile[c][score_col + 8 * j], s[j]);
            }
        }
#pragma unroll
        for (int j = 0; j < KT / 8; j++)
        {
            const int col = score_col + 8 * j;
            p_tile[score_row][col] = key0 + col < tokens ? s[j] * scale : neg_infinity();
        }
        __syncthreads();

        // Online softmax: fold this tile into each row's running maximum and sum.
        for (int r = warp; r < BQ; r += WARPS)
        {
            const float score = p_tile[r][lane];
            const float old_max = row_max[r];
            const float new_max = fmaxf(old_max, warp_max(score));
            const float p = expf(score - new_max);
            const float tile_sum = warp_sum(p);
            p_tile[r][lane] = p;
            __syncwarp(); // every lane has read row_max[r] before lane 0 replaces it
            if (lane == 0)
            {
                const float rescale = expf(old_max - new_max);
                row_rescale[r] = rescale;
                row_sum[r] = row_sum[r] * rescale + tile_sum;
                row_max[r] = new_max;
            }
        }

        // O = O·rescale + P·V, one head-dimension chunk of V at a time.
        for (int d0 = 0; d0 < head_dim; d0 += DC)
        {
            __syncthreads(); // p_tile and row_rescale are complete; the previous v_tile is consumed
            for (int e = tid; e < KT * DC; e += THREADS)
            {
                const int c = e / KT, j = e % KT; // j fastest: consecutive tokens, coalesced
                v_tile[j][c] = (d0 + c < head_dim && key0 + j < tokens) ? v[(size_t)(d0 + c) * tokens + key0 + j] : 0.0f;
            }
            __syncthreads();
            if (d0 + lane < head_dim)
            {
                for (int r = warp; r < BQ; r += WARPS)
                {
                    float acc = 0.0f;
#pragma unroll 8
                    for (int j = 0; j < KT; j++) acc = fmaf(p_tile[r][j], v_tile[j][lane], acc);
                    float* o = &o_rows[r * o_stride + d0 + lane];
                    *o = *o * row_rescale[r] + acc;
                }
            }
        }
        __syncthreads(); // p_tile is rewritten by the next key tile
    }

    for (int e = tid; e < BQ * head_dim; e += THREADS)
    {
        const int c = e / BQ, r = e % BQ; // r fastest: consecutive tokens, coalesced stores
        if (q0 + r < tokens)
            y[((size_t)n * channels + (size_t)head * head_dim + c) * tokens + q0 + r] = o_rows[r * o_stride + c] / row_sum[r];
    }
}

extern "C" __global__ void __launch_bounds__(128, 4) attention_v2_q16(const float* __restrict__ qkv, float* __restrict__ y,
                                                                 int channels, int tokens, int head_dim, float scale)
{
    attention_flash<16>(qkv, y, channels, tokens, head_dim, scale);
}

extern "C" __global__ void __launch_bounds__(256, 2) attention_v2_q32(const float* __restrict__ qkv, float* __restrict__ y,
                                                                 int channels, int tokens, int head_dim, float scale)
{
    attention_flash<32>(qkv, y, channels, tokens, head_dim, scale);
}
