// Conv2d — the GPU twin of CpuBackend.Conv2d (src/Diffusion.Kernels/Backends/Cpu/Conv2d.cs).
//
// For a square K×K kernel with stride s and padding p before the image (PadEnd only changes the output size):
//   y[n, co, oy, ox] = ( bias[co] + Σ_{ci, ky, kx} w[co, ci, ky, kx] · x[n, ci, oy·s − p + ky, ox·s − p + kx]
//                        + channelBias[n, co] + residual[n, co, oy, ox] ) · scale
// where reads outside the image are zero; channelBias and residual are optional (Conv2dParams flags), the
// epilogue that folds the time-embedding broadcast and the residual add into the store.
// Weights stay in PyTorch's layout (Cout, Cin·K·K): the threads of a warp compute neighbouring pixels of one output
// channel, so they all read the same weight (one broadcast) and neighbouring input values.
//
// Versions (DIFFUSION_KERNEL_VERSION_conv2d=N, registered in KernelCatalog):
//   1  Version1: one thread per output value running the CPU loop nest over (ci, ky, kx). Readable; every thread
//      re-reads its weights and inputs from global memory.

using ILGPU;

namespace Diffusion.Kernels.Gpu;

/// <summary>Geometry and epilogue of one conv2d launch; the host fills it from Conv2dSpec and the tensors.</summary>
public struct Conv2dParams
{
    public int Batch, InChannels, Height, Width, OutChannels, OutHeight, OutWidth, Kernel, Stride, Pad;
    public float Scale;
    /// <summary>1 when channelBias / residual hold data; 0 when they are one-element placeholders.</summary>
    public int HasChannelBias, HasResidual;

    public readonly int OutputCount => Batch * OutChannels * OutHeight * OutWidth;
}

public static class Conv2d
{
    public static void Version1(Index1D index, Conv2dParams p, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> channelBias, ArrayView<float> residual, ArrayView<float> y)
    {
        int i = index;
        int ox = i % p.OutWidth;
        int oy = i / p.OutWidth % p.OutHeight;
        int co = i / (p.OutWidth * p.OutHeight) % p.OutChannels;
        int n = i / (p.OutWidth * p.OutHeight * p.OutChannels);
        int taps = p.Kernel * p.Kernel;
        float acc = 0f;
        for (int ci = 0; ci < p.InChannels; ci++)
        {
            long plane = ((long)n * p.InChannels + ci) * p.Height * p.Width;
            long row = ((long)co * p.InChannels + ci) * taps;
            for (int ky = 0; ky < p.Kernel; ky++)
            {
                int iy = oy * p.Stride - p.Pad + ky;
                if (iy < 0 || iy >= p.Height) continue;
                for (int kx = 0; kx < p.Kernel; kx++)
                {
                    int ix = ox * p.Stride - p.Pad + kx;
                    if (ix < 0 || ix >= p.Width) continue;
                    acc += weight[row + ky * p.Kernel + kx] * x[plane + (long)iy * p.Width + ix];
                }
            }
        }
        y[i] = Epilogue(acc, n, co, i, p, bias, channelBias, residual);
    }

    /// <summary>The store every version ends with: bias, the optional per-(n, co) bias and residual, then the scale.</summary>
    public static float Epilogue(float acc, int n, int co, long index, in Conv2dParams p, ArrayView<float> bias,
        ArrayView<float> channelBias, ArrayView<float> residual)
    {
        float value = acc + bias[co];
        if (p.HasChannelBias != 0) value += channelBias[(long)n * p.OutChannels + co];
        if (p.HasResidual != 0) value += residual[index];
        return value * p.Scale;
    }
}
