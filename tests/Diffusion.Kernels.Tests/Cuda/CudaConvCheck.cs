using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cuda;
using Diffusion.Kernels.Tests.Kernels;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// The body the per-version and half-precision convolution tests share: one convolution on fresh random inputs, run
/// plainly and with every epilogue term (per-image channel bias, residual, scale 0.5), each measured against
/// <see cref="Reference.Conv2d"/> by <see cref="KernelCheck.NormalisedError"/>.
/// </summary>
internal static class CudaConvCheck
{
    public static (double Plain, double Fused) Errors(CudaBackend b, Conv2dSpec spec, int size, int batch)
    {
        int cin = spec.InChannels, cout = spec.OutChannels, k = spec.Kernel, o = spec.OutputSize(size);
        int seed = cin * 1000 + cout * 10 + k + spec.Stride;
        float[] x = Random(seed, batch * cin * size * size), w = Random(seed + 1, cout * cin * k * k, -0.2f, 0.2f), bias = Random(seed + 2, cout);
        float[] channelBias = Random(seed + 3, batch * cout), residual = Random(seed + 4, batch * cout * o * o);

        using var weights = b.PrepareConv2d(spec, w, bias);
        using var tx = b.Upload(x, batch, cin, size, size);
        using var tcb = b.Upload(channelBias, batch, cout);
        using var tres = b.Upload(residual, batch, cout, o, o);
        using var plain = b.Allocate(batch, cout, o, o);
        using var fused = b.Allocate(batch, cout, o, o);
        b.Conv2d(tx, weights, plain);
        b.Conv2d(tx, weights, fused, new Conv2dEpilogue(tcb, tres, 0.5f));

        double Error(DeviceTensor y, float[]? cb, float[]? res, float scale) => NormalisedError(Download(b, y),
            Reference.Conv2d(x, batch, cin, size, size, w, bias, cout, k, spec.Stride, spec.PadBegin, spec.PadEnd, cb, res, scale));
        return (Error(plain, null, null, 1f), Error(fused, channelBias, residual, 0.5f));
    }
}
