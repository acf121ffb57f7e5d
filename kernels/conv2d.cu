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
// Versions (DIFFUSION_KERNEL_VERSION_conv2d=1|2):
//   1  conv2d_v1: one thread per output value running the CPU loop nest over (ci, ky, kx). Readable, and slow
//      because every thread re-reads the same weights and input from global memory.
//   2  conv2d_v2_k1 / _k3 / _kn (default): implicit GEMM. The conv is a matrix product
//      Y[co, pixel] = Σ_k W[k, co] · X̂[k, pixel] with k = (ci, ky, kx) and pixel = (n, oy, ox), where X̂ (the
//      "im2col" matrix) is never stored: each 16-deep slice of it is gathered from x straight into shared memory.
//      A block of 256 threads computes a 64 (channels) × 64 (pixels) tile of Y; each thread keeps a 4×4 sub-tile
//      of accumulators in registers and reads the staged slices from shared memory, so each input value fetched
//      from global memory is used 64 times. _k1 and _k3 fix K at compile time so the (ci, ky, kx) split of k is
//      a multiply-shift instead of a division; _kn serves any other K.
// Accumulation is float32 with fused multiply-add.

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
