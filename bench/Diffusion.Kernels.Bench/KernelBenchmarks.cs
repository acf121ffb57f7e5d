using BenchmarkDotNet.Attributes;
using Diffusion.Kernels.Backends.Cpu;

namespace Diffusion.Kernels.Bench;

/// <summary>Each U-Net convolution shape on the CPU backend (all cores).</summary>
public class CpuConvBenchmarks
{
    private CpuBackend? _backend;
    private ConvFixture? _fixture;

    [ParamsSource(nameof(Workloads))]
    public ConvWorkload Workload { get; set; } = null!;

    public static IEnumerable<ConvWorkload> Workloads => DdpmCifar.Convs();

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        _fixture = new ConvFixture(_backend, Workload);
    }

    [Benchmark(Description = "Conv2d")]
    public void Conv2d() => _fixture!.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        _fixture?.Dispose();
        _backend?.Dispose();
    }
}

/// <summary>U-Net self-attention shapes on the CPU backend.</summary>
public class CpuAttentionBenchmarks
{
    private CpuBackend? _backend;
    private AttentionFixture? _fixture;

    [ParamsSource(nameof(Workloads))]
    public AttentionWorkload Workload { get; set; } = null!;

    public static IEnumerable<AttentionWorkload> Workloads => DdpmCifar.Attentions();

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        _fixture = new AttentionFixture(_backend, Workload);
    }

    [Benchmark(Description = "Attention")]
    public void Attention() => _fixture!.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        _fixture?.Dispose();
        _backend?.Dispose();
    }
}

/// <summary>U-Net group norm + SiLU shapes on the CPU backend.</summary>
public class CpuGroupNormBenchmarks
{
    private CpuBackend? _backend;
    private GroupNormFixture? _fixture;

    [ParamsSource(nameof(Workloads))]
    public GroupNormWorkload Workload { get; set; } = null!;

    public static IEnumerable<GroupNormWorkload> Workloads => DdpmCifar.GroupNorms();

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        _fixture = new GroupNormFixture(_backend, Workload);
    }

    [Benchmark(Description = "GroupNorm")]
    public void GroupNorm() => _fixture!.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        _fixture?.Dispose();
        _backend?.Dispose();
    }
}

/// <summary>The whole ddpm-cifar10-32 forward on the CPU backend, synthetic weights, t = 500.</summary>
public class CpuForwardBenchmarks
{
    private CpuBackend? _backend;
    private ForwardFixture? _fixture;

    [ParamsSource(nameof(Workloads))]
    public ForwardWorkload Workload { get; set; } = null!;

    public static IEnumerable<ForwardWorkload> Workloads => DdpmCifar.Forwards();

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        _fixture = new ForwardFixture(_backend, Workload.Batch);
    }

    [Benchmark(Description = "UNet2D.Forward")]
    public void Forward() => _fixture!.Run();

    [GlobalCleanup]
    public void Cleanup()
    {
        _fixture?.Dispose();
        _backend?.Dispose();
    }
}
