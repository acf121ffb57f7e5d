// linear.cu — Linear, the CUDA twin of CpuBackend.Linear.
//
// y[r, o] = b[o] + Σ_i W[o, i] · act(x[r, i]) with act = SiLU when silu_input is set (the time-embedding MLP and
// each resnet's time projection take SiLU of their input). W is PyTorch's (out, in) layout, row-major.
// The U-Net calls this with a handful of rows (the batch) and ~512–1024 features: a matrix-vector product,
// limited by reading W once, so the work is arranged for coalesced reads of W rather than for reuse.
//
// Versions (DIFFUSION_KERNEL_VERSION_linear=1|2):
//   1  linear_v1: one thread per output (r, o) walks W's row o alone. Neighbouring threads read addresses `in`
//      floats apart, so every load is a separate memory transaction.
//   2  linear_v2 (default): one warp per output. The 32 lanes read 32 consecutive weights per step (one
//      transaction), accumulate privately, and finish with a warp-shuffle sum.

__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

extern "C" __global__ void linear_v1(const float* __restrict__ x, const float* __restrict__ weight,
                                     const float* __restrict__ bias, float* __restrict__ y, int rows, int in_features,
                                     int out_features, int silu_input)
{
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= rows * out_features) return;
    const int r = index / out_features;
    const int o = index % out_features;
    float acc = 0.0f;
    for (int i = 0; i < in_features; i++)
    {
        const float v = x[(size_t)r * in_features + i];
        acc += weight[(size_t)o * in_features + i] * (silu_input ? silu(v) : v);
    }
    y[index] = acc + bias[o];
}

extern "C" __global__ void linear_v2(const float* __restrict__ x, const float* __restrict__ weight,
                                     const float* __restrict__ bias, float* __restrict__ y, int rows, int in_features,
                                     int out_features, int silu_input)
{
    const int lane = threadIdx.x & 31;
    const int index = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; // one warp per output
    if (index >= rows * out_features) return;                       // whole warps leave together
    const int r = index / out_features;
    const int o = index % out_features;
    const float* xr = x + (size_t)r * in_features;
    const float* wo = weight + (size_t)o * in_features;
    float acc = 0.0f;
    for (int i = lane; i < in_features; i += 32)
    {
        const float v = xr[i];
        acc = fmaf(wo[i], silu_input ? silu(v) : v, acc);
    }
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) y[index] = acc + bias[o];
}
