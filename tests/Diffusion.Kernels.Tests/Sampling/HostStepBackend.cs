using Diffusion.Kernels.Backends;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// The few backend ops the sampling loop uses (allocate, copy, Add, SamplerStep), on managed arrays, written
/// straight from the documented formulas. Lets the sampler tests run without a full backend.
/// </summary>
internal sealed class HostStepBackend : IBackend
{
    public string Name => "host-step";

    public string DeviceDescription => "managed arrays (sampler tests)";

    public int SamplerSteps { get; private set; }

    public DeviceTensor Allocate(params int[] shape) => new Tensor(this, shape);

    public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape)
    {
        var tensor = new Tensor(this, shape);
        data.CopyTo(tensor.Data);
        return tensor;
    }

    public void Download(DeviceTensor source, Span<float> destination) => Of(source).AsSpan().CopyTo(destination);

    public void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f)
    {
        float[] x = Of(a), z = Of(b), o = Of(y);
        for (int i = 0; i < o.Length; i++) o[i] = (x[i] + z[i]) * scale;
    }

    public void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients k, DeviceTensor next)
    {
        SamplerSteps++;
        // The CUDA backend refuses a missing tensor whose coefficient is non-zero; so do we, to catch such plans here.
        if (noise is null && k.NextFromNoise != 0) throw new DiffusionException("sampler step needs noise: its coefficient is non-zero");
        if (prevX0 is null && k.NextFromPrevX0 != 0) throw new DiffusionException("sampler step needs the previous x0: its coefficient is non-zero");
        float[] x = Of(sample), m = Of(modelOutput), y = Of(next);
        float[]? z = noise is null ? null : Of(noise), p = prevX0 is null ? null : Of(prevX0), o = x0Out is null ? null : Of(x0Out);
        for (int i = 0; i < y.Length; i++)
        {
            float x0 = Math.Clamp(k.X0FromSample * x[i] + k.X0FromModel * m[i], -k.ClipRange, k.ClipRange);
            float eps = k.EpsFromSample * x[i] + k.EpsFromModel * m[i];
            float result = k.NextFromX0 * x0 + k.NextFromEps * eps + k.NextFromSample * x[i];
            if (p is not null) result += k.NextFromPrevX0 * p[i];
            if (z is not null) result += k.NextFromNoise * z[i];
            if (o is not null) o[i] = x0;
            y[i] = result;
        }
    }

    public void Synchronize() { }

    public void Dispose() { }

    public Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias) => throw new NotSupportedException();

    public LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias) => throw new NotSupportedException();

    public void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default) => throw new NotSupportedException();

    public void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y) => throw new NotSupportedException();

    public void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false) => throw new NotSupportedException();

    public void SiLU(DeviceTensor x, DeviceTensor y) => throw new NotSupportedException();

    public void Upsample2x(DeviceTensor x, DeviceTensor y) => throw new NotSupportedException();

    public void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y) => throw new NotSupportedException();

    public void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y) => throw new NotSupportedException();

    public void Attention(DeviceTensor qkv, DeviceTensor y, int heads) => throw new NotSupportedException();

    public static float[] Of(DeviceTensor tensor) => ((Tensor)tensor).Data;

    private sealed class Tensor(IBackend owner, int[] shape) : DeviceTensor(owner, shape)
    {
        public float[] Data { get; } = new float[HostTensor.Count(shape)];

        protected override void Dispose(bool disposing) { }
    }
}
