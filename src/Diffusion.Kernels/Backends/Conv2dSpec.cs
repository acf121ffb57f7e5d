namespace Diffusion.Kernels.Backends;

/// <summary>
/// Geometry of a square-kernel 2-D convolution. Padding is given as (before, after) and applies to both
/// height and width: 3×3 same-size convs use (1, 1), 1×1 shortcuts (0, 0), and diffusers'
/// downsample_padding = 0 becomes (0, 1): pad right/bottom by one before the stride-2 conv.
/// </summary>
public readonly record struct Conv2dSpec(int InChannels, int OutChannels, int Kernel, int Stride, int PadBegin, int PadEnd)
{
    public static Conv2dSpec Same3x3(int inChannels, int outChannels) => new(inChannels, outChannels, 3, 1, 1, 1);

    public static Conv2dSpec Pointwise(int inChannels, int outChannels) => new(inChannels, outChannels, 1, 1, 0, 0);

    public int OutputSize(int inputSize) => (inputSize + PadBegin + PadEnd - Kernel) / Stride + 1;

    /// <summary>Multiply-adds ×2 for one image of the given input size; benchmarks report throughput from it.</summary>
    public double Flops(int height, int width) =>
        2.0 * OutChannels * OutputSize(height) * OutputSize(width) * InChannels * Kernel * Kernel;
}

/// <summary>
/// What a convolution adds to its result before storing it, so residual adds and the time-embedding broadcast
/// cost no extra pass over memory: y = (conv(x) + bias + ChannelBias[n, c] + Residual) · Scale.
/// OutputScale is nullable so that <c>default(Conv2dEpilogue)</c>, the "no epilogue" value, scales by 1, not 0.
/// </summary>
public readonly record struct Conv2dEpilogue(DeviceTensor? ChannelBias = null, DeviceTensor? Residual = null, float? OutputScale = null)
{
    public float Scale => OutputScale ?? 1f;
}

/// <summary>Convolution weights in whatever layout the backend prefers, prepared once at load time.</summary>
public abstract class Conv2dWeights(Conv2dSpec spec) : IDisposable
{
    public Conv2dSpec Spec { get; } = spec;

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);
}

/// <summary>Fully connected weights (out × in, PyTorch layout on input), prepared once at load time.</summary>
public abstract class LinearWeights(int inFeatures, int outFeatures) : IDisposable
{
    public int InFeatures { get; } = inFeatures;

    public int OutFeatures { get; } = outFeatures;

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);
}
