// sampler.cu — SamplerStep, the CUDA twin of CpuBackend.SamplerStep.
//
// One fused pass per denoising step, for every scheduler (DDPM, DDIM, DPM-Solver++(2M), Euler ancestral): the
// host reduces the step to the scalars of SamplerStepCoefficients (computed in float64, passed as float32), and
// each thread applies them to one value:
//   x0   = clamp(x0_from_sample·x + x0_from_model·m, −clip, clip)
//   eps  = eps_from_sample·x + eps_from_model·m
//   next = next_from_x0·x0 + next_from_eps·eps + next_from_sample·x [+ next_from_prev_x0·x0_prev] [+ next_from_noise·z]
// where the bracketed terms are skipped when their tensor is absent (null). Products and sums are rounded one at a
// time (__fmul_rn/__fadd_rn cannot be contracted into FMAs), left to right, so the result matches the CPU
// backend's float32 arithmetic exactly. next may alias x: each value is read before it is written.
//
// Versions: one. Reading four tensors and writing one or two is pure bandwidth; one coalesced loop is optimal.

extern "C" __global__ void sampler_step(const float* sample, const float* model_output, const float* noise,
                                        const float* prev_x0, float* x0_out, float* next, int count,
                                        float x0_from_sample, float x0_from_model, float clip, float eps_from_sample,
                                        float eps_from_model, float next_from_x0, float next_from_eps,
                                        float next_from_sample, float next_from_prev_x0, float next_from_noise)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x)
    {
        const float x = sample[i];
        const float m = model_output[i];
        float x0 = __fadd_rn(__fmul_rn(x0_from_sample, x), __fmul_rn(x0_from_model, m));
        x0 = fminf(fmaxf(x0, -clip), clip);
        const float eps = __fadd_rn(__fmul_rn(eps_from_sample, x), __fmul_rn(eps_from_model, m));
        float value = __fadd_rn(__fmul_rn(next_from_x0, x0), __fmul_rn(next_from_eps, eps));
        value = __fadd_rn(value, __fmul_rn(next_from_sample, x));
        if (prev_x0 != nullptr) value = __fadd_rn(value, __fmul_rn(next_from_prev_x0, prev_x0[i]));
        if (noise != nullptr) value = __fadd_rn(value, __fmul_rn(next_from_noise, noise[i]));
        if (x0_out != nullptr) x0_out[i] = x0;
        next[i] = value;
    }
}
