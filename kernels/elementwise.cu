// elementwise.cu — the small memory-bound ops, CUDA twins of CpuBackend.SiLU, Add, Upsample2x, Concat and
// TimestepEmbedding. Each thread handles one output value in a grid-stride loop (the host sizes the grid to fill
// the device once; the loop covers any remainder), so consecutive threads touch consecutive floats.
//
//   silu                y = x·σ(x) = x / (1 + e^−x); y may alias x
//   add_scaled          y = (a + b)·scale; y may alias a or b
//   upsample2x          y[n, c, Y, X] = x[n, c, Y/2, X/2] (nearest neighbour)
//   concat_channels     y[n, 0:Ca] = a[n], y[n, Ca:Ca+Cb] = b[n]
//   timestep_embedding  y[n, k] = sin(t_n·f_k), y[n, half + k] = cos(t_n·f_k) (swapped when flip is set), with
//                       f_k = exp(neg_log_max_period·k / (half − shift)); an odd dim leaves its last column 0.
//                       Evaluated in diffusers' float32 order: the product, then the quotient, then expf, then
//                       t·f. __fmul_rn/__fdiv_rn keep the compiler from fusing a multiply into an FMA, so the
//                       rounding matches the CPU's step by step (sinf/cosf/expf are IEEE, not fast-math).
//
// Versions: one. These ops move each value once; a simple coalesced loop already runs at memory bandwidth.

__device__ __forceinline__ float silu_of(float v) { return v / (1.0f + expf(-v)); }

extern "C" __global__ void silu(const float* x, float* y, int count)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) y[i] = silu_of(x[i]);
}

extern "C" __global__ void add_scaled(const float* a, const float* b, float* y, int count, float scale)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x)
        y[i] = __fmul_rn(a[i] + b[i], scale);
}

extern "C" __global__ void upsample2x(const float* __restrict__ x, float* __restrict__ y, int planes, int h, int w)
{
    const int wo = 2 * w;
    const int total = planes * 4 * h * w;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x)
    {
        const int ox = i % wo;
        const int oy = (i / wo) % (2 * h);
        const int plane = i / (wo * 2 * h);
        y[i] = x[((size_t)plane * h + oy / 2) * w + ox / 2];
    }
}

extern "C" __global__ void concat_channels(const float* __restrict__ a, const float* __restrict__ b,
                                           float* __restrict__ y, int batch, int ca, int cb, int hw)
{
    const int per_image = (ca + cb) * hw;
    const int total = batch * per_image;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x)
    {
        const int n = i / per_image;
        const int within = i - n * per_image; // (channel, pixel) inside the joined image
        y[i] = within < ca * hw ? a[(size_t)n * ca * hw + within] : b[(size_t)n * cb * hw + within - ca * hw];
    }
}

extern "C" __global__ void timestep_embedding(const float* __restrict__ timesteps, float* __restrict__ y, int batch,
                                              int dim, int flip_sin_to_cos, float neg_log_max_period, float shift)
{
    const int half = dim / 2;
    const int total = batch * dim;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x)
    {
        const int n = i / dim;
        const int column = i % dim;
        if (column >= 2 * half)
        {
            y[i] = 0.0f;
            continue;
        }
        const bool first_half = column < half;
        const int k = first_half ? column : column - half;
        const float exponent = __fdiv_rn(__fmul_rn(neg_log_max_period, (float)k), (float)half - shift);
        const float argument = __fmul_rn(timesteps[n], expf(exponent));
        y[i] = first_half != (flip_sin_to_cos != 0) ? sinf(argument) : cosf(argument);
    }
}
