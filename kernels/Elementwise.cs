// Elementwise — the small memory-bound ops, GPU twins of CpuBackend.SiLU, Add, Upsample2x and Concat
// (Backends/Cpu/Elementwise.cs). One thread per output value, so consecutive threads touch consecutive floats.
//   SiLU        y = x·σ(x) = x / (1 + e^−x); y may alias x
//   Add         y = (a + b)·scale; y may alias a or b
//   Upsample2x  y[n, c, Y, X] = x[n, c, Y/2, X/2] (nearest neighbour)
//   Concat      y[n, 0:Ca] = a[n], y[n, Ca:Ca+Cb] = b[n] (channels)
//
// Versions: one each (the methods carry the op's name). These ops move each value once; a coalesced pass already
// runs at memory bandwidth.

using ILGPU;

namespace Diffusion.Kernels.Gpu;

public struct ElementwiseParams
{
    /// <summary>Add: the scale.</summary>
    public float Scale;
    /// <summary>Upsample2x: input height and width. Concat: channels of a and b, pixels per channel.</summary>
    public int Height, Width, ChannelsA, ChannelsB, Pixels;
}

public static class Elementwise
{
    public static void SiLU(Index1D index, ElementwiseParams p, ArrayView<float> x, ArrayView<float> y) => y[index] = SiLUValue(x[index]);

    public static void Add(Index1D index, ElementwiseParams p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) =>
        y[index] = (a[index] + b[index]) * p.Scale;

    public static void Upsample2x(Index1D index, ElementwiseParams p, ArrayView<float> x, ArrayView<float> y)
    {
        int i = index;
        int outWidth = 2 * p.Width;
        int ox = i % outWidth;
        int oy = i / outWidth % (2 * p.Height);
        int plane = i / (outWidth * 2 * p.Height);
        y[i] = x[((long)plane * p.Height + oy / 2) * p.Width + ox / 2];
    }

    public static void Concat(Index1D index, ElementwiseParams p, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int i = index;
        int perImage = (p.ChannelsA + p.ChannelsB) * p.Pixels;
        int n = i / perImage;
        int within = i - n * perImage; // (channel, pixel) inside the joined image
        int fromA = p.ChannelsA * p.Pixels;
        y[i] = within < fromA ? a[(long)n * fromA + within] : b[(long)n * p.ChannelsB * p.Pixels + within - fromA];
    }

    /// <summary>x / (1 + e^−x), PyTorch's formula; on PTX MathF.Exp becomes ex2.approx (see the tolerances in KernelCatalog).</summary>
    public static float SiLUValue(float v) => v / (1f + MathF.Exp(-v));
}
