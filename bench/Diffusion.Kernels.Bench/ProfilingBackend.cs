using System.Diagnostics;
using Diffusion.Kernels.Backends;

namespace Diffusion.Kernels.Bench;

/// <summary>
/// Wraps a backend and times every op it forwards, keyed by op and shape, so one U-Net forward breaks down into
/// "where the milliseconds went". Ops on the CPU backend finish when they return, so a Stopwatch around each
/// call is the op's time; on an asynchronous backend every op would need a Synchronize first.
/// </summary>
public sealed class ProfilingBackend(IBackend inner) : IBackend
{
    private readonly Dictionary<string, OpStats> _stats = [];

    public sealed class OpStats
    {
        public int Calls;
        public double Seconds;
        public double Flops;
    }

    public IReadOnlyDictionary<string, OpStats> Stats => _stats;

    public bool Enabled { get; set; } = true;

    public void Reset() => _stats.Clear();

    public string Name => inner.Name;

    public string DeviceDescription => inner.DeviceDescription;

    public long AvailableMemoryBytes => inner.AvailableMemoryBytes;

    public DeviceTensor Allocate(params int[] shape) => inner.Allocate(shape);

    public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape) => inner.Upload(data, shape);

    public void Download(DeviceTensor source, Span<float> destination) => inner.Download(source, destination);

    public Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias) =>
        inner.PrepareConv2d(spec, weight, bias);

    public LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias) =>
        inner.PrepareLinear(inFeatures, outFeatures, weight, bias);

    public void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default)
    {
        var s = weights.Spec;
        var e = epilogue;
        Time($"conv {s.Kernel}x{s.Kernel}{(s.Stride > 1 ? " s2" : "")} {s.InChannels}->{s.OutChannels} at {x.H}x{x.W}",
            x.N * s.Flops(x.H, x.W), () => inner.Conv2d(x, weights, y, e));
    }

    public void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y) =>
        Time($"group norm{(silu ? " + SiLU" : "")} {x.C} at {x.H}x{x.W}", 0, () => inner.GroupNorm(x, gamma, beta, groups, eps, silu, y));

    public void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false) =>
        Time($"linear {weights.InFeatures}->{weights.OutFeatures}", 2.0 * x.Shape[0] * weights.InFeatures * weights.OutFeatures,
            () => inner.Linear(x, weights, y, siluInput));

    public void SiLU(DeviceTensor x, DeviceTensor y) => Time("SiLU", 0, () => inner.SiLU(x, y));

    public void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f) => Time("add", 0, () => inner.Add(a, b, y, scale));

    public void Upsample2x(DeviceTensor x, DeviceTensor y) => Time($"upsample {x.C} at {x.H}x{x.W}", 0, () => inner.Upsample2x(x, y));

    public void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y) => Time($"concat {a.C}+{b.C} at {a.H}x{a.W}", 0, () => inner.Concat(a, b, y));

    public void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y)
    {
        var clock = Stopwatch.StartNew();
        inner.TimestepEmbedding(timesteps, flipSinToCos, freqShift, y);
        Record("timestep embedding", 0, clock.Elapsed.TotalSeconds);
    }

    public void Attention(DeviceTensor qkv, DeviceTensor y, int heads) =>
        Time($"attention {y.C} ch at {y.H}x{y.W}", 4.0 * y.N * y.C * Math.Pow(y.H * y.W, 2), () => inner.Attention(qkv, y, heads));

    public void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next)
    {
        var c = coefficients;
        Time("sampler step", 0, () => inner.SamplerStep(sample, modelOutput, noise, prevX0, x0Out, c, next));
    }

    public void Synchronize() => inner.Synchronize();

    public void Dispose() => inner.Dispose();

    private void Time(string key, double flops, Action op)
    {
        long start = Stopwatch.GetTimestamp();
        op();
        Record(key, flops, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    private void Record(string key, double flops, double seconds)
    {
        if (!Enabled) return;
        if (!_stats.TryGetValue(key, out var s)) _stats[key] = s = new OpStats();
        s.Calls++;
        s.Seconds += seconds;
        s.Flops += flops;
    }
}
