// conv2d.cu — Conv2d, the CUDA twin of CpuBackend.Conv2d.
//
// Computes, for a square K×K kernel with stride s and padding p before the image (Conv2dSpec.PadBegin;
// PadEnd only changes the output size, which the host computes):
//   y[n, co, oy, ox] = ( bias[co] + Σ_{ci, ky, kx} w[co, ci, ky, kx] · x[n, ci, oy·s − p + ky, ox·s − p + kx]
//                        + channel_bias[n, co] + residual[n, co, oy, ox] ) · scale
// where reads outside the image are zero and channel_bias / residual are optional (null) — the epilogue that
// folds the time-embedding broadcast and the residual add into the store (Conv2dEpilogue).
//
// Weights arrive transposed once at load time to wt[(ci·K + ky)·K + kx][co]: the reduction index major, output
// channel minor, so the threads of a warp that need neighbouring output channels read neighbouring floats.
//
// Versions (DIFFUSION_KERNEL_VERSION_conv2d=1|2|3):
//   1  conv2d_v1: one thread per output value running the CPU loop nest over (ci, ky, kx). Readable, and slow
//      because every thread re-reads the same weights and input from global memory.
//   2  conv2d_v2_k1 / _k3 / _kn (default): implicit GEMM. The conv is a matrix product
//      Y[co, pixel] = Σ_k W[k, co] · X̂[k, pixel] with k = (ci, ky, kx) and pixel = (n, oy, ox), where X̂ (the
//      "im2col" matrix) is never stored: each 16-deep slice of it is gathered from x straight into shared memory.
//      A block of 256 threads computes a 64 (channels) × 64 (pixels) tile of Y; each thread keeps a 4×4 sub-tile
//      of accumulators in registers and reads the staged slices from shared memory, so each input value fetched
//      from global memory is used 64 times. _k1 and _k3 fix K at compile time so the (ci, ky, kx) split of k is
//      a multiply-shift instead of a division; _kn serves any other K.
//   3  conv2d_v3_k1 / _k3 / _kn (opt-in: CudaBackendOptions.HalfPrecision, never the default): the same implicit
//      GEMM on tensor cores. Weights are stored in half precision (prepared once, row co, reduction index k
//      contiguous, k padded with zeros to a multiple of 32); activations stay float32 in memory — the IBackend
//      seam is float32 — and are rounded to half as they are gathered into shared memory. Each warp issues
//      mma.sync m16n8k16 (half inputs, float32 accumulate) over a 32 × 32 piece of a 64 × 64 tile. Shared memory
//      is double-buffered so the next slice's global loads overlap this slice's tensor-core work.
//      Needs compute capability 8.0+ (on older GPUs the entry points exist but trap; the host refuses them).
//      Rounding the inputs to 11 significant bits costs accuracy: expect ~1e-3 normalised error, not ~1e-6.
// Accumulation is float32 (fused multiply-add in versions 1 and 2, tensor-core accumulate in version 3).

__device__ __forceinline__ float conv2d_epilogue(float acc, int n, int co, int cout, size_t index, const float* bias,
                                                 const float* channel_bias, const float* residual, float scale)
{
    float value = acc + bias[co];
    if (channel_bias != nullptr) value += channel_bias[n * cout + co];
    if (residual != nullptr) value += residual[index];
    return value * scale;
}

extern "C" __global__ void conv2d_v1(const float* __restrict__ x, const float* __restrict__ wt, const float* __restrict__ bias,
                                     const float* __restrict__ channel_bias, const float* __restrict__ residual,
                                     float* __restrict__ y, int batch, int cin, int h, int w, int cout, int ho, int wo,
                                     int ksize, int stride, int pad, float scale)
{
    const int total = batch * cout * ho * wo;
    for (int index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x)
    {
        const int ox = index % wo;
        const int oy = (index / wo) % ho;
        const int co = (index / (wo * ho)) % cout;
        const int n = index / (wo * ho * cout);
        float acc = 0.0f;
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < ksize; ky++)
                for (int kx = 0; kx < ksize; kx++)
                {
                    const int iy = oy * stride - pad + ky;
                    const int ix = ox * stride - pad + kx;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                    acc += wt[((ci * ksize + ky) * ksize + kx) * cout + co] * x[((size_t)(n * cin + ci) * h + iy) * w + ix];
                }
        y[index] = conv2d_epilogue(acc, n, co, cout, index, bias, channel_bias, residual, scale);
    }
}

namespace conv2d_tiling
{
constexpr int BM = 64;      // output channels per block
constexpr int BN = 64;      // output pixels per block
constexpr int BK = 16;      // reduction depth staged per step
constexpr int TM = 4;       // output channels per thread
constexpr int TN = 4;       // output pixels per thread
constexpr int THREADS = (BM / TM) * (BN / TN);   // 256
constexpr int LOAD_ROWS = THREADS / BN;          // rows of a slice loaded per pass: 4
}

// KS > 0 fixes the kernel size at compile time; KS == 0 reads it from ksize.
template <int KS>
__device__ __forceinline__ void conv2d_tiled(const float* __restrict__ x, const float* __restrict__ wt,
                                             const float* __restrict__ bias, const float* __restrict__ channel_bias,
                                             const float* __restrict__ residual, float* __restrict__ y, int batch,
                                             int cin, int h, int w, int cout, int ho, int wo, int ksize, int stride,
                                             int pad, float scale)
{
    using namespace conv2d_tiling;
    const int ks = KS > 0 ? KS : ksize;
    const int taps = ks * ks;
    const int depth = cin * taps;              // the GEMM's reduction length
    const int pixels = ho * wo;                // per image
    const int columns = batch * pixels;        // the GEMM's N
    const int co0 = blockIdx.y * BM;
    const int p0 = blockIdx.x * BN;

    __shared__ float a_tile[BK][BM];
    __shared__ float b_tile[BK][BN];

    // Loading role: each thread fetches one column (a channel of W, a pixel of X̂) at rows load_row + 4r.
    // Its pixel never changes, so its (n, oy, ox) is decoded once.
    const int load_col = threadIdx.x % BN;
    const int load_row = threadIdx.x / BN;
    const int my_pixel = p0 + load_col;
    const bool pixel_ok = my_pixel < columns;
    const int pn = pixel_ok ? my_pixel / pixels : 0;
    const int prem = pixel_ok ? my_pixel - pn * pixels : 0;
    const int iy0 = (prem / wo) * stride - pad;
    const int ix0 = (prem % wo) * stride - pad;
    const float* x_image = x + (size_t)pn * cin * h * w;
    const int my_channel = co0 + load_col;

    // Computing role: thread (ty, tx) owns channels ty + 16i and pixels tx + 16j. Strided ownership keeps a
    // warp's shared-memory reads on distinct banks and makes the final stores coalesced.
    const int tx = threadIdx.x % (BN / TN);
    const int ty = threadIdx.x / (BN / TN);
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < depth; k0 += BK)
    {
#pragma unroll
        for (int r = 0; r < BK / LOAD_ROWS; r++)
        {
            const int row = load_row + LOAD_ROWS * r;
            const int k = k0 + row;
            a_tile[row][load_col] = (k < depth && my_channel < cout) ? wt[(size_t)k * cout + my_channel] : 0.0f;
            float value = 0.0f;
            if (k < depth && pixel_ok)
            {
                const int ci = k / taps;
                const int tap = k - ci * taps;
                const int ky = tap / ks;
                const int iy = iy0 + ky;
                const int ix = ix0 + (tap - ky * ks);
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) value = x_image[((size_t)ci * h + iy) * w + ix];
            }
            b_tile[row][load_col] = value;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; k++)
        {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = a_tile[k][ty + (BM / TM) * i];
#pragma unroll
            for (int j = 0; j < TN; j++) b[j] = b_tile[k][tx + (BN / TN) * j];
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int j = 0; j < TN; j++)
    {
        const int p = p0 + tx + (BN / TN) * j;
        if (p >= columns) continue;
        const int n = p / pixels;
        const int rem = p - n * pixels;
#pragma unroll
        for (int i = 0; i < TM; i++)
        {
            const int co = co0 + ty + (BM / TM) * i;
            if (co >= cout) continue;
            const size_t index = ((size_t)n * cout + co) * pixels + rem;
            y[index] = conv2d_epilogue(acc[i][j], n, co, cout, index, bias, channel_bias, residual, scale);
        }
    }
}

#define CONV2D_PARAMS                                                                                              \
    const float *__restrict__ x, const float *__restrict__ wt, const float *__restrict__ bias,                    \
        const float *__restrict__ channel_bias, const float *__restrict__ residual, float *__restrict__ y,         \
        int batch, int cin, int h, int w, int cout, int ho, int wo, int ksize, int stride, int pad, float scale
#define CONV2D_ARGS x, wt, bias, channel_bias, residual, y, batch, cin, h, w, cout, ho, wo, ksize, stride, pad, scale

extern "C" __global__ void __launch_bounds__(conv2d_tiling::THREADS) conv2d_v2_k1(CONV2D_PARAMS)
{
    conv2d_tiled<1>(CONV2D_ARGS);
}

extern "C" __global__ void __launch_bounds__(conv2d_tiling::THREADS) conv2d_v2_k3(CONV2D_PARAMS)
{
    conv2d_tiled<3>(CONV2D_ARGS);
}

extern "C" __global__ void __launch_bounds__(conv2d_tiling::THREADS) conv2d_v2_kn(CONV2D_PARAMS)
{
    conv2d_tiled<0>(CONV2D_ARGS);
}

// ---------------------------------------------------------------------------------------------------------------
// Version 3: tensor cores.
//
// The mma fragments (tensor_cores.cuh) map A rows to output channels and B columns to pixels; both tiles are kept in
// shared memory with k contiguous ([channel][k] and [pixel][k]), so every fragment register is one aligned 32-bit load.

#include "tensor_cores.cuh"

namespace conv2d_mma
{
constexpr int BM = 64;                  // output channels per block
constexpr int BN = 64;                  // output pixels per block
constexpr int BK = 32;                  // reduction depth per stage (two mma k-steps)
constexpr int LD = BK + 8;              // shared row length in halves: 80 bytes keeps rows 16-byte aligned, and the
                                        // 20-word stride puts the 8 rows × 4 words of a fragment load on 32 banks
constexpr int THREADS = 128;            // 4 warps in a 2 × 2 grid, each computing 32 channels × 32 pixels
constexpr int A_CHUNKS = BM * BK / 8 / THREADS;      // 16-byte weight chunks each thread stages: 2
constexpr int B_PAIRS = BK / 2 / (THREADS / BN);     // k pairs of one pixel each thread stages: 8
}

template <int KS>
__device__ __forceinline__ void conv2d_tensor_core(const float* __restrict__ x, const unsigned short* __restrict__ wh,
                                           const float* __restrict__ bias, const float* __restrict__ channel_bias,
                                           const float* __restrict__ residual, float* __restrict__ y, int batch,
                                           int cin, int h, int w, int cout, int ho, int wo, int ksize, int stride,
                                           int pad, float scale, int kpad)
{
#if __CUDA_ARCH__ >= 800
    using namespace conv2d_mma;
    const int ks = KS > 0 ? KS : ksize;
    const int taps = ks * ks;
    const int depth = cin * taps;
    const int pixels = ho * wo;
    const int columns = batch * pixels;
    const int co0 = blockIdx.y * BM;
    const int p0 = blockIdx.x * BN;

    __shared__ __align__(16) unsigned short a_tile[2][BM][LD];
    __shared__ __align__(16) unsigned short b_tile[2][BN][LD];

    // Staging role for the input: one pixel column (fixed, so decoded once) and k pairs first_pair + 2r.
    const int load_col = threadIdx.x % BN;
    const int first_pair = threadIdx.x / BN;
    const int my_pixel = p0 + load_col;
    const bool pixel_ok = my_pixel < columns;
    const int pn = pixel_ok ? my_pixel / pixels : 0;
    const int prem = pixel_ok ? my_pixel - pn * pixels : 0;
    const int iy0 = (prem / wo) * stride - pad;
    const int ix0 = (prem % wo) * stride - pad;
    const float* x_image = x + (size_t)pn * cin * h * w;

    auto im2col = [&](int k) -> float {
        if (k >= depth || !pixel_ok) return 0.0f;
        const int ci = k / taps;
        const int tap = k - ci * taps;
        const int ky = tap / ks;
        const int iy = iy0 + ky;
        const int ix = ix0 + (tap - ky * ks);
        return (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x_image[((size_t)ci * h + iy) * w + ix] : 0.0f;
    };

    // Registers holding the next stage while the tensor cores work on the current one.
    uint4 a_next[A_CHUNKS];
    unsigned int b_next[B_PAIRS];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int c = 0; c < A_CHUNKS; c++)
        {
            const int chunk = threadIdx.x + c * THREADS;
            const int co = co0 + chunk / (BK / 8);
            // kpad is a multiple of BK and k0 < depth <= kpad, so the whole chunk lies inside the padded row.
            a_next[c] = co < cout ? *reinterpret_cast<const uint4*>(wh + (size_t)co * kpad + k0 + (chunk % (BK / 8)) * 8)
                                  : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int r = 0; r < B_PAIRS; r++)
        {
            const int k = k0 + 2 * (first_pair + 2 * r);
            b_next[r] = tc_pack_half2(im2col(k), im2col(k + 1));
        }
    };
    auto stage = [&](int buffer) {
#pragma unroll
        for (int c = 0; c < A_CHUNKS; c++)
        {
            const int chunk = threadIdx.x + c * THREADS;
            *reinterpret_cast<uint4*>(&a_tile[buffer][chunk / (BK / 8)][(chunk % (BK / 8)) * 8]) = a_next[c];
        }
#pragma unroll
        for (int r = 0; r < B_PAIRS; r++)
            *reinterpret_cast<unsigned int*>(&b_tile[buffer][load_col][2 * (first_pair + 2 * r)]) = b_next[r];
    };

    const int warp = threadIdx.x / 32;
    const int g = (threadIdx.x % 32) / 4;
    const int t = threadIdx.x % 4;
    const int warp_m = (warp / 2) * 32;
    const int warp_n = (warp % 2) * 32;
    float acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;

    fetch(0);
    stage(0);
    __syncthreads();
    int buffer = 0;
    for (int k0 = 0; k0 < depth; k0 += BK)
    {
        // Two buffers need one barrier per stage: this stage reads `buffer` and writes the other one, and the
        // barrier at the end orders both against the next stage, which swaps their roles.
        const bool more = k0 + BK < depth;
        if (more) fetch(k0 + BK);
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16)
        {
            unsigned int a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
            {
                const unsigned short* top = &a_tile[buffer][warp_m + mi * 16 + g][kk + 2 * t];
                const unsigned short* bottom = top + 8 * LD;
                a[mi][0] = tc_load_pair(top);
                a[mi][1] = tc_load_pair(bottom);
                a[mi][2] = tc_load_pair(top + 8);
                a[mi][3] = tc_load_pair(bottom + 8);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++)
            {
                const unsigned short* column = &b_tile[buffer][warp_n + ni * 8 + g][kk + 2 * t];
                b[ni][0] = tc_load_pair(column);
                b[ni][1] = tc_load_pair(column + 8);
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) tc_mma_m16n8k16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
        }
        if (more) stage(buffer ^ 1);
        __syncthreads();
        buffer ^= 1;
    }

#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int e = 0; e < 4; e++)
            {
                const int co = co0 + warp_m + mi * 16 + g + (e / 2) * 8;
                const int p = p0 + warp_n + ni * 8 + 2 * t + (e % 2);
                if (co >= cout || p >= columns) continue;
                const int n = p / pixels;
                const size_t index = ((size_t)n * cout + co) * pixels + (p - n * pixels);
                y[index] = conv2d_epilogue(acc[mi][ni][e], n, co, cout, index, bias, channel_bias, residual, scale);
            }
#else
    __trap();
#endif
}

#define CONV2D_MMA_PARAMS                                                                                          \
    const float *__restrict__ x, const unsigned short *__restrict__ wh, const float *__restrict__ bias,            \
        const float *__restrict__ channel_bias, const float *__restrict__ residual, float *__restrict__ y,         \
        int batch, int cin, int h, int w, int cout, int ho, int wo, int ksize, int stride, int pad, float scale,   \
        int kpad
#define CONV2D_MMA_ARGS x, wh, bias, channel_bias, residual, y, batch, cin, h, w, cout, ho, wo, ksize, stride, pad, scale, kpad

extern "C" __global__ void __launch_bounds__(conv2d_mma::THREADS) conv2d_v3_k1(CONV2D_MMA_PARAMS)
{
    conv2d_tensor_core<1>(CONV2D_MMA_ARGS);
}

extern "C" __global__ void __launch_bounds__(conv2d_mma::THREADS) conv2d_v3_k3(CONV2D_MMA_PARAMS)
{
    conv2d_tensor_core<3>(CONV2D_MMA_ARGS);
}

extern "C" __global__ void __launch_bounds__(conv2d_mma::THREADS) conv2d_v3_kn(CONV2D_MMA_PARAMS)
{
    conv2d_tensor_core<0>(CONV2D_MMA_ARGS);
}
