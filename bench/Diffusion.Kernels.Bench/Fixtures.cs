using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Bench;

/// <summary>Backend, weights and tensors for one workload, filled with seeded random values and reused every call.</summary>
public sealed class ConvFixture : IDisposable
{
    private readonly Conv2dWeights _weights;
    private readonly DeviceTensor _x, _y;

    public ConvFixture(IBackend backend, ConvWorkload w)
    {
        Backend = backend;
        var s = w.Spec;
        _weights = backend.PrepareConv2d(s, Fill(1, s.OutChannels * s.InChannels * s.Kernel * s.Kernel), Fill(2, s.OutChannels));
        _x = backend.Upload(Fill(3, w.Batch * s.InChannels * w.Size * w.Size), w.Batch, s.InChannels, w.Size, w.Size);
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

    internal static float[] Fill(int seed, int count)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = rng.NextSingle() - 0.5f;
        return data;
    }
}

public sealed class AttentionFixture(IBackend backend, AttentionWorkload w) : IDisposable
{
    private readonly DeviceTensor _qkv = backend.Upload(ConvFixture.Fill(4, w.Batch * 3 * w.Channels * w.Tokens), w.Batch, 3 * w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, w.Size, w.Size);

    public void Run() => backend.Attention(_qkv, _y, w.Heads);

    public void Dispose()
    {
        _qkv.Dispose();
        _y.Dispose();
    }
}

public sealed class GroupNormFixture(IBackend backend, GroupNormWorkload w) : IDisposable
{
    private readonly DeviceTensor _x = backend.Upload(ConvFixture.Fill(5, w.Batch * w.Channels * w.Size * w.Size), w.Batch, w.Channels, w.Size, w.Size);
    private readonly DeviceTensor _gamma = backend.Upload(ConvFixture.Fill(6, w.Channels), w.Channels);
    private readonly DeviceTensor _beta = backend.Upload(ConvFixture.Fill(7, w.Channels), w.Channels);
    private readonly DeviceTensor _y = backend.Allocate(w.Batch, w.Channels, w.Size, w.Size);

    public void Run() => backend.GroupNorm(_x, _gamma, _beta, 32, 1e-6f, true, _y);

    public void Dispose()
    {
        _x.Dispose();
        _gamma.Dispose();
        _beta.Dispose();
        _y.Dispose();
    }
}

/// <summary>
/// The whole ddpm-cifar10-32 U-Net on a backend: config from weights/goldens, synthetic weights (seed 42, the
/// ones the parity test and bench/side_by_side.py use), a seeded Gaussian sample and t = 500.
/// </summary>
public sealed class ForwardFixture : IDisposable
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
