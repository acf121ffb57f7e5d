// Linear — the GPU twin of CpuBackend.Linear.
//
// y[r, o] = b[o] + Σ_i W[o, i] · act(x[r, i]) with act = SiLU when SiluInput is set (the time-embedding MLP and
// each resnet's time projection take SiLU of their input). W is PyTorch's (out, in) layout, row-major. The U-Net
// calls it with a handful of rows (the batch): a matrix-vector product limited by reading W once.
//
// Versions (DIFFUSION_KERNEL_VERSION_linear=N):
//   1  Version1: one thread per output (r, o) walks W's row o alone. Neighbouring threads read addresses In
//      floats apart, so every load is its own memory transaction.

using ILGPU;

namespace Diffusion.Kernels.Gpu;

public struct LinearParams
{
    public int Rows, In, Out, SiluInput;

    public readonly int OutputCount => Rows * Out;
}

public static class Linear
{
    public static void Version1(Index1D index, LinearParams p, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> y)
    {
        int r = index / p.Out;
        int o = index % p.Out;
        float acc = 0f;
        for (int i = 0; i < p.In; i++)
        {
            float v = x[(long)r * p.In + i];
            acc += weight[(long)o * p.In + i] * (p.SiluInput != 0 ? Elementwise.SiLUValue(v) : v);
        }
        y[index] = acc + bias[o];
    }
}
