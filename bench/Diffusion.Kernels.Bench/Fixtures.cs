using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Bench;

/// <summary>One op with its weights and tensors allocated once: <see cref="Run"/> issues exactly one call.</summary>
public interface IFixture : IDisposable
{
    void Run();
}

/// <summary>Uniform values in [−0.5, 0.5) from a fixed seed, so every run and every backend times the same data.</summary>
internal static class Seeded
{
    public static float[] Values(int seed, int count)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = rng.NextSingle() - 0.5f;
        return data;
    }

    public static DeviceTensor Tensor(IBackend backend, int seed, params int[] shape) =>
        backend.Upload(Values(seed, checked((int)HostTensor.Count(shape))), shape);
}

/// <summary>Backend, weights and tensors for one workload, filled with seeded random values and reused every call.</summary>
public sealed class ConvFixture : IFixture
{
    private readonly Conv2dWeights _weights;
    private readonly DeviceTensor _x, _y;

    public ConvFixture(IBackend backend, ConvWorkload w)
    {
        Backend = backend;
        var s = w.Spec;
        _weights = backend.PrepareConv2d(s, Seeded.Values(1, s.OutChannels * s.InChannels * s.Kernel * s.Kernel), Seeded.Values(2, s.OutChannels));
        _x = Seeded.Tensor(backend, 3, w.Batch, s.InChannels, w.Size, w.Size);
        _y = backend.Allocate(w.Batch, s.OutChannels, s.OutputSize(w.Size), s.OutputSize(w.Size));
    }

    public IBackend Backend { get; }

    public void Run() => Backend.Conv2d(_x, _weights, _y);

    public void Dispose()
    {
        _weights.Dispose();
        _x.Dispose();
        _y.Dispose();
    }
}

public sealed class AttentionFixture(IBackend backend, AttentionWorkload w) : IFixture
{
    private readonly DeviceTensor _qkv = Seeded.Tensor(backend, 4, w.Batch, 3 * w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, w.Size, w.Size);

    public void Run() => backend.Attention(_qkv, _y, w.Heads);

    public void Dispose()
    {
        _qkv.Dispose();
        _y.Dispose();
    }
}

public sealed class GroupNormFixture(IBackend backend, GroupNormWorkload w) : IFixture
{
    private readonly DeviceTensor _x = Seeded.Tensor(backend, 5, w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _gamma = Seeded.Tensor(backend, 6, w.Channels);
    private readonly DeviceTensor _beta = Seeded.Tensor(backend, 7, w.Channels);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, w.Size, w.Size);

    public void Run() => backend.GroupNorm(_x, _gamma, _beta, 32, 1e-6f, w.SiLU, _y);

    public void Dispose()
    {
        _x.Dispose();
        _gamma.Dispose();
        _beta.Dispose();
        _y.Dispose();
    }
}

public sealed class LinearFixture(IBackend backend, LinearWorkload w) : IFixture
{
    private readonly LinearWeights _weights = backend.PrepareLinear(w.InFeatures, w.OutFeatures,
        Seeded.Values(8, w.InFeatures * w.OutFeatures), Seeded.Values(9, w.OutFeatures));
    private readonly DeviceTensor _x = Seeded.Tensor(backend, 10, w.Batch, w.InFeatures);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.OutFeatures);

    public void Run() => backend.Linear(_x, _weights, _y, w.SiluInput);

    public void Dispose()
    {
        _weights.Dispose();
        _x.Dispose();
        _y.Dispose();
    }
}

public sealed class SiLUFixture(IBackend backend, SiLUWorkload w) : IFixture
{
    private readonly DeviceTensor _x = Seeded.Tensor(backend, 11, w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, w.Size, w.Size);

    public void Run() => backend.SiLU(_x, _y);

    public void Dispose()
    {
        _x.Dispose();
        _y.Dispose();
    }
}

public sealed class AddFixture(IBackend backend, AddWorkload w) : IFixture
{
    private readonly DeviceTensor _a = Seeded.Tensor(backend, 12, w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor? _b = w.SameInput ? null : Seeded.Tensor(backend, 13, w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, w.Size, w.Size);

    /// <summary>The pipeline's input scaling passes the sample twice with scale s/2; 0.5 stands in for s/2.</summary>
    public void Run() => backend.Add(_a, _b ?? _a, _y, w.SameInput ? 0.5f : 1f);

    public void Dispose()
    {
        _a.Dispose();
        _b?.Dispose();
        _y.Dispose();
    }
}

public sealed class ConcatFixture(IBackend backend, ConcatWorkload w) : IFixture
{
    private readonly DeviceTensor _h = Seeded.Tensor(backend, 14, w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _skip = Seeded.Tensor(backend, 15, w.Batch, w.SkipChannels, w.Size, w.Size);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels + w.SkipChannels, w.Size, w.Size);

    public void Run() => backend.Concat(_h, _skip, _y);

    public void Dispose()
    {
        _h.Dispose();
        _skip.Dispose();
        _y.Dispose();
    }
}

public sealed class UpsampleFixture(IBackend backend, UpsampleWorkload w) : IFixture
{
    private readonly DeviceTensor _x = Seeded.Tensor(backend, 16, w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, 2 * w.Size, 2 * w.Size);

    public void Run() => backend.Upsample2x(_x, _y);

    public void Dispose()
    {
        _x.Dispose();
        _y.Dispose();
    }
}

/// <summary>ddpm-cifar10-32's time_proj: flip_sin_to_cos false, freq_shift 1, at a spread of timesteps.</summary>
public sealed class TimestepEmbeddingFixture(IBackend backend, TimestepEmbeddingWorkload w) : IFixture
{
    private readonly float[] _timesteps = Enumerable.Range(0, w.Batch).Select(i => 999f - 100f * i).ToArray();
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Dim);

    public void Run() => backend.TimestepEmbedding(_timesteps, false, 1f, _y);

    public void Dispose() => _y.Dispose();
}

/// <summary>
/// The pipeline's SamplerStep call, with the operands its plan asks for, except that the next sample goes to a
/// tensor of its own: updated in place, each timed call would feed the last one's output back in and let the
/// values drift (DPM-Solver++ grows them every step), so later calls would time different numbers.
/// </summary>
public sealed class SamplerStepFixture(IBackend backend, SamplerStepWorkload w) : IFixture
{
    private readonly DeviceTensor _sample = Seeded.Tensor(backend, 17, w.Shape);
    private readonly DeviceTensor _modelOutput = Seeded.Tensor(backend, 18, w.Shape);
    private readonly DeviceTensor? _noise = w.Plan.NeedsNoise ? Seeded.Tensor(backend, 19, w.Shape) : null;
    private readonly DeviceTensor? _previousX0 = w.Plan.UsesPreviousX0 ? Seeded.Tensor(backend, 20, w.Shape) : null;
    private readonly DeviceTensor _x0 = backend.Allocate(w.Shape);
    private readonly DeviceTensor _next = backend.Allocate(w.Shape);

    public void Run() => backend.SamplerStep(_sample, _modelOutput, _noise, _previousX0, _x0, w.Plan.Coefficients, _next);

    public void Dispose()
    {
        _sample.Dispose();
        _modelOutput.Dispose();
        _noise?.Dispose();
        _previousX0?.Dispose();
        _x0.Dispose();
        _next.Dispose();
    }
}

/// <summary>
/// The whole ddpm-cifar10-32 U-Net on a backend: config from weights/goldens, synthetic weights (seed 42, the
/// ones the parity test and bench/side_by_side.py use), a seeded Gaussian sample and t = 500.
/// </summary>
public sealed class ForwardFixture : IFixture
{
    private static readonly Lazy<(UNet2DConfig Config, Dictionary<string, HostTensor> Weights)> s_model = new(() =>
    {
        var config = UNet2DConfig.Load(Path.Combine(RepositoryRoot(), "weights", "goldens", "unet_cifar10_config.json"));
        var weights = UNet2DLayout.ExpectedTensors(config)
            .ToDictionary(t => t.Name, t => new HostTensor(t.Shape, SyntheticWeights.Generate(t.Name, t.Shape, 42)));
        return (config, weights);
    });

    private readonly UNet2D _net;
    private readonly DeviceTensor _sample, _output;
    private readonly float[] _timesteps;

    public ForwardFixture(IBackend backend, int batch)
    {
        var (config, weights) = s_model.Value;
        _net = UNet2D.Create(config, weights, backend);
        var (c, h, w) = _net.SampleShape;
        var sample = new HostTensor([batch, c, h, w], SyntheticWeights.Gaussian("sample", batch * c * h * w, 7));
        _sample = backend.Upload(sample.Data, sample.Shape);
        _output = backend.Allocate(_net.OutputShape(sample.Shape));
        _timesteps = [500f];
    }

    public void Run() => _net.Forward(_sample, _timesteps, _output);

    public void Dispose()
    {
        _sample.Dispose();
        _output.Dispose();
        _net.Dispose();
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "weights", "goldens"))) return dir.FullName;
        }
        throw new DirectoryNotFoundException("no weights/goldens above " + AppContext.BaseDirectory);
    }
}
