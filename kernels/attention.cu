// attention.cu — Attention, the CUDA twin of CpuBackend.Attention.
//
// Multi-head scaled dot-product attention over the T = H·W tokens of each image, reading q, k and v from the
// channel-blocked qkv tensor (N, 3C, H, W) the fused 1×1 projection writes: q = channels [0, C), k = [C, 2C),
// v = [2C, 3C); head h owns channels [h·d, (h+1)·d) of each. Token t of channel c sits at c·T + t, so a head's
// q is a d × T matrix and neighbouring tokens are neighbouring floats.
//   y[n, h·d + c, t] = Σ_j softmax_j(q_t · k_j · scale) · v[c, j],   scale = 1/√d (host computes it)
// The softmax subtracts the row maximum and uses IEEE expf (no fast-math).
//
// Versions (DIFFUSION_KERNEL_VERSION_attention=1|2|3):
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
//   3  attention_v3 (opt-in: CudaBackendOptions.HalfPrecision, never the default): the same flash attention with
//      S = Q·Kᵀ and O += P·V on tensor cores (mma.sync m16n8k16, half inputs, float32 accumulate). q, k and v stay
//      float32 in memory and are rounded to half as they are staged into shared memory; P is rounded to half for
//      the second product. The softmax (m, l, the rescaling) stays float32 with IEEE expf. A block of 4 warps owns
//      64 queries, 16 per warp, and walks the keys in tiles of 32; each warp keeps its rows' O in registers (d up to
//      256; the host runs version 2 for wider heads), and its S accumulators serve directly as the A operand of
//      P·V. Needs compute capability 8.0+ (on older GPUs the entry point exists but traps; the host refuses it).
//      Rounding q, k, v and P to 11 significant bits costs accuracy: expect ~1e-3 normalised error (4e-4 to 6e-4
//      measured by the emulation on uniform(−2, 2) inputs), not ~1e-6.

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

// ---------------------------------------------------------------------------------------------------------------
// Version 3: tensor cores.
//
// With the mma fragments of tensor_cores.cuh, S = Q·Kᵀ has m = query, k = head-dimension channel, n = key, and
// O = P·V has m = query, k = key, n = channel. Q and K are staged [token][channel] and V [channel][key], so every
// fragment register is one aligned 32-bit shared-memory load. The S accumulators of two neighbouring 8-key tiles
// are, element for element, the A fragment of P for a 16-key step, so P goes from the softmax to the second mma
// without touching shared memory.

#include "tensor_cores.cuh"

namespace attention_mma
{
constexpr int BQ = 64;          // queries per block: 16 per warp, one mma row block each
constexpr int KT = 32;          // keys per tile
constexpr int DMAX = 256;       // largest head dimension: a warp's 16 output rows live in registers, DMAX/2 floats per
                                // thread (the CIFAR U-Net's single head is 256 wide); larger heads run version 2
constexpr int THREADS = 128;
constexpr int PAD = 8;          // halves added to each shared row: row strides of 4 mod 8 words put the 8 rows × 4
                                // words of a fragment load (and of a staging store) on 32 distinct banks
constexpr int VLD = KT + PAD;   // V tile row length in halves
}

// Stages tokens [token0, token0 + ROWS) of one head's d × T matrix (q or k) as tile[row][channel] halves, zero past
// the last token and past head_dim. Each warp pass covers 8 tokens × 4 channel pairs: the global reads are whole
// 32-byte sectors (8 neighbouring tokens of a channel) and the 32-bit stores land on 32 distinct banks, where 32
// consecutive tokens of one channel pair would hit 8 banks 4 times each.
template <int ROWS>
__device__ __forceinline__ void attention_stage_rows(unsigned short* tile, int ld, const float* __restrict__ src,
                                                     int token0, int tokens, int head_dim, int d_pad)
{
    for (int e = threadIdx.x; e < ROWS * d_pad / 2; e += attention_mma::THREADS)
    {
        const int pass = e / 32;
        const int row = (pass % (ROWS / 8)) * 8 + e % 8;
        const int c = 2 * ((pass / (ROWS / 8)) * 4 + (e % 32) / 8);
        const int token = token0 + row;
        const float lo = token < tokens && c < head_dim ? src[(size_t)c * tokens + token] : 0.0f;
        const float hi = token < tokens && c + 1 < head_dim ? src[(size_t)(c + 1) * tokens + token] : 0.0f;
        *reinterpret_cast<unsigned int*>(&tile[row * ld + c]) = tc_pack_half2(lo, hi);
    }
}

// BQ queries per block, one warp per 16 of them. Each warp keeps its rows' running maximum m, running sum l and
// unnormalised output O in registers (the thread of lane (g, t) holds rows g and g + 8) and runs the same online
// softmax as version 2 per key tile, with S and P·V on tensor cores. The head dimension is padded with zeros to a
// multiple of 16 (one mma k-step); dynamic shared memory holds Q, one K tile and one V tile (71 KB at d = 256).
extern "C" __global__ void __launch_bounds__(attention_mma::THREADS) attention_v3(const float* __restrict__ qkv, float* __restrict__ y,
                                                                     int channels, int tokens, int head_dim, float scale)
{
#if __CUDA_ARCH__ >= 800
    using namespace attention_mma;
    extern __shared__ __align__(16) unsigned short attention_tiles[];
    const int d_pad = (head_dim + 15) & ~15;
    const int ld = d_pad + PAD;
    unsigned short* q_tile = attention_tiles;     // [BQ][ld]
    unsigned short* k_tile = q_tile + BQ * ld;    // [KT][ld]
    unsigned short* v_tile = k_tile + KT * ld;    // [d_pad][VLD]

    const int q0 = blockIdx.x * BQ;
    const int head = blockIdx.y;
    const int n = blockIdx.z;
    const int warp = threadIdx.x / 32;
    const int g = (threadIdx.x % 32) / 4;
    const int t = threadIdx.x % 4;
    const int row0 = warp * 16;
    const float* q = qkv + ((size_t)n * 3 * channels + (size_t)head * head_dim) * tokens;
    const float* k = q + (size_t)channels * tokens;
    const float* v = k + (size_t)channels * tokens;

    float o[DMAX / 8][4];
#pragma unroll
    for (int nt = 0; nt < DMAX / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[nt][e] = 0.0f;
    float row_max[2] = {neg_infinity(), neg_infinity()};
    float row_sum[2] = {0.0f, 0.0f}; // this thread's share; the quad's four shares are added at the end

    attention_stage_rows<BQ>(q_tile, ld, q, q0, tokens, head_dim, d_pad);
    for (int key0 = 0; key0 < tokens; key0 += KT)
    {
        __syncthreads(); // every warp is done with the previous K and V tiles
        attention_stage_rows<KT>(k_tile, ld, k, key0, tokens, head_dim, d_pad);
        for (int e = threadIdx.x; e < d_pad * (KT / 2); e += THREADS)
        {
            const int c = e / (KT / 2);
            const int j = 2 * (e % (KT / 2)); // consecutive lanes read consecutive keys
            const int key = key0 + j;
            const float lo = c < head_dim && key < tokens ? v[(size_t)c * tokens + key] : 0.0f;
            const float hi = c < head_dim && key + 1 < tokens ? v[(size_t)c * tokens + key + 1] : 0.0f;
            *reinterpret_cast<unsigned int*>(&v_tile[c * VLD + j]) = tc_pack_half2(lo, hi);
        }
        __syncthreads();

        // S = Q·Kᵀ for the warp's 16 queries and the tile's KT keys.
        float s[KT / 8][4];
#pragma unroll
        for (int nt = 0; nt < KT / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nt][e] = 0.0f;
        for (int kk = 0; kk < d_pad; kk += 16)
        {
            const unsigned short* top = &q_tile[(row0 + g) * ld + kk + 2 * t];
            const unsigned short* bottom = top + 8 * ld;
            const unsigned int a[4] = {tc_load_pair(top), tc_load_pair(bottom), tc_load_pair(top + 8),
                                       tc_load_pair(bottom + 8)};
#pragma unroll
            for (int nt = 0; nt < KT / 8; nt++)
            {
                const unsigned short* key = &k_tile[(nt * 8 + g) * ld + kk + 2 * t];
                tc_mma_m16n8k16(s[nt], a, tc_load_pair(key), tc_load_pair(key + 8));
            }
        }

        // Online softmax, in float32. Element (nt, 2r + e) of s is row g + 8r against key nt·8 + 2t + e; the other
        // keys of the row sit in the three other lanes of the quad, so the row maximum is two shuffles away.
#pragma unroll
        for (int r = 0; r < 2; r++)
        {
            float tile_max = neg_infinity();
#pragma unroll
            for (int nt = 0; nt < KT / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                {
                    const float score = key0 + nt * 8 + 2 * t + e < tokens ? s[nt][2 * r + e] * scale : neg_infinity();
                    s[nt][2 * r + e] = score;
                    tile_max = fmaxf(tile_max, score);
                }
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
            // Key 0 is in the first tile, so new_max is finite from then on and exp(−inf − new_max) = 0 masks.
            const float new_max = fmaxf(row_max[r], tile_max);
            const float rescale = expf(row_max[r] - new_max);
            float tile_sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < KT / 8; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                {
                    const float p = expf(s[nt][2 * r + e] - new_max);
                    s[nt][2 * r + e] = p;
                    tile_sum += p;
                }
            row_sum[r] = row_sum[r] * rescale + tile_sum;
            row_max[r] = new_max;
#pragma unroll
            for (int nt = 0; nt < DMAX / 8; nt++)
                if (nt * 8 < d_pad)
                {
                    o[nt][2 * r] *= rescale;
                    o[nt][2 * r + 1] *= rescale;
                }
        }

        // O += P·V, 16 keys per mma k-step; columns past d_pad are never touched.
#pragma unroll
        for (int ks = 0; ks < KT / 16; ks++)
        {
            const unsigned int a[4] = {tc_pack_half2(s[2 * ks][0], s[2 * ks][1]), tc_pack_half2(s[2 * ks][2], s[2 * ks][3]),
                                       tc_pack_half2(s[2 * ks + 1][0], s[2 * ks + 1][1]),
                                       tc_pack_half2(s[2 * ks + 1][2], s[2 * ks + 1][3])};
#pragma unroll
            for (int nt = 0; nt < DMAX / 8; nt++)
                if (nt * 8 < d_pad)
                {
                    const unsigned short* column = &v_tile[(nt * 8 + g) * VLD + ks * 16 + 2 * t];
                    tc_mma_m16n8k16(o[nt], a, tc_load_pair(column), tc_load_pair(column + 8));
                }
        }
    }

#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 1);
        row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], 2);
    }
    float* out = y + ((size_t)n * channels + (size_t)head * head_dim) * tokens;
#pragma unroll
    for (int nt = 0; nt < DMAX / 8; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
        {
            const int c = nt * 8 + 2 * t + e % 2;
            const int query = q0 + row0 + g + 8 * (e / 2);
            if (c < head_dim && query < tokens) out[(size_t)c * tokens + query] = o[nt][e] / row_sum[e / 2];
        }
#else
    __trap();
#endif
}
