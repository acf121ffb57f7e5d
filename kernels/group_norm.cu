// group_norm.cu — GroupNorm, the CUDA twin of CpuBackend.GroupNorm.
//
// For each image n and group g of C/G consecutive channels, over all (c, h, w) of the group:
//   mean = Σ x / count,  var = Σ (x − mean)² / count   (biased, as PyTorch)
//   y = (x − mean) / sqrt(var + eps) · gamma[c] + beta[c],  then y = y·σ(y) when silu is set.
// The variance is taken in a second pass over (x − mean) rather than as E[x²] − mean², which cancels
// catastrophically when the mean is large next to the spread. y may alias x: each element is read and written
// by the same thread, after both statistics are complete.
//
// Versions (DIFFUSION_KERNEL_VERSION_group_norm=1|2):
//   1  group_norm_v1: one thread per (n, group) runs the three passes serially — the CPU code on one core.
//   2  group_norm_v2 (default): one block per (n, group). The group's elements are contiguous in NCHW, so the
//      threads stride over them with coalesced reads; each pass's partial sums are combined with warp shuffles
//      (no shared memory inside a warp) and one slot per warp in shared memory. The group (a few KB to a few
//      hundred KB) stays in L1/L2 between passes, so the three passes cost little more than one trip to memory.
// No fast-math: sqrtf, the division and expf are IEEE-accurate.

__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

extern "C" __global__ void group_norm_v1(const float* x, const float* __restrict__ gamma, const float* __restrict__ beta,
                                         float* y, int batch, int channels, int hw, int groups, float eps, int apply_silu)
{
    const int item = blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= batch * groups) return;
    const int n = item / groups;
    const int g = item % groups;
    const int per_group = channels / groups;
    const int count = per_group * hw;
    const size_t base = ((size_t)n * channels + (size_t)g * per_group) * hw;

    float sum = 0.0f;
    for (int i = 0; i < count; i++) sum += x[base + i];
    const float mean = sum / count;
    float squares = 0.0f;
    for (int i = 0; i < count; i++)
    {
        const float d = x[base + i] - mean;
        squares += d * d;
    }
    const float inv_std = 1.0f / sqrtf(squares / count + eps);
    for (int i = 0; i < count; i++)
    {
        const int c = g * per_group + i / hw;
        float v = (x[base + i] - mean) * inv_std * gamma[c] + beta[c];
        y[base + i] = apply_silu ? silu(v) : v;
    }
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sum over the whole block, returned to every thread. scratch holds one float per warp.
__device__ float block_sum(float v, float* scratch)
{
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0)
    {
        v = warp_sum(lane < warps ? scratch[lane] : 0.0f);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    const float total = scratch[0];
    __syncthreads(); // scratch is reused by the next call
    return total;
}

extern "C" __global__ void group_norm_v2(const float* x, const float* __restrict__ gamma, const float* __restrict__ beta,
                                         float* y, int batch, int channels, int hw, int groups, float eps, int apply_silu)
{
    __shared__ float scratch[32];
    const int n = blockIdx.x / groups;
    const int g = blockIdx.x % groups;
    const int per_group = channels / groups;
    const int count = per_group * hw;
    const size_t base = ((size_t)n * channels + (size_t)g * per_group) * hw;
    const float* xg = x + base;
    float* yg = y + base;

    float partial = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) partial += xg[i];
    const float mean = block_sum(partial, scratch) / count;

    partial = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
    {
        const float d = xg[i] - mean;
        partial += d * d;
    }
    const float inv_std = 1.0f / sqrtf(block_sum(partial, scratch) / count + eps);

    for (int i = threadIdx.x; i < count; i += blockDim.x)
    {
        const int c = g * per_group + i / hw;
        const float v = (xg[i] - mean) * inv_std * gamma[c] + beta[c];
        yg[i] = apply_silu ? silu(v) : v;
    }
}
