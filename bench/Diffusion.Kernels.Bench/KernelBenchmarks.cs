using BenchmarkDotNet.Attributes;
using Diffusion.Kernels.Backends.Cpu;

namespace Diffusion.Kernels.Bench;

/// <summary>
/// What every benchmark class here shares: one case per workload, whose fixture is built once on a CPU backend
/// with all cores, and one op call timed. A subclass names its workloads, its fixture and its [Benchmark] method,
/// whose Description is the op's name in the summary.
/// </summary>
public abstract class CpuBenchmarks<TWorkload>(Func<IEnumerable<TWorkload>> listWorkloads, Func<CpuBackend, TWorkload, IFixture> createFixture)
    where TWorkload : IWorkload
{
    private CpuBackend? _backend;
    private IFixture? _fixture;

    [ParamsSource(nameof(Workloads))]
    public TWorkload Workload { get; set; } = default!;

    public IEnumerable<TWorkload> Workloads => listWorkloads();

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        _fixture = createFixture(_backend, Workload);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _fixture?.Dispose();
        _backend?.Dispose();
    }

    protected void Run() => _fixture!.Run();
}

/// <summary>Each U-Net convolution shape.</summary>
public class CpuConvBenchmarks() : CpuBenchmarks<ConvWorkload>(DdpmCifar.Convs, (backend, w) => new ConvFixture(backend, w))
{
    [Benchmark(Description = "Conv2d")]
    public void Conv2d() => Run();
}

/// <summary>U-Net self-attention shapes.</summary>
public class CpuAttentionBenchmarks() : CpuBenchmarks<AttentionWorkload>(DdpmCifar.Attentions, (backend, w) => new AttentionFixture(backend, w))
{
    [Benchmark(Description = "Attention")]
    public void Attention() => Run();
}

/// <summary>U-Net group norm + SiLU shapes.</summary>
public class CpuGroupNormBenchmarks() : CpuBenchmarks<GroupNormWorkload>(DdpmCifar.GroupNorms, (backend, w) => new GroupNormFixture(backend, w))
{
    [Benchmark(Description = "GroupNorm")]
    public void GroupNorm() => Run();
}

/// <summary>The time-embedding MLP and the resnets' time_emb_proj.</summary>
public class CpuLinearBenchmarks() : CpuBenchmarks<LinearWorkload>(DdpmCifar.Linears, (backend, w) => new LinearFixture(backend, w))
{
    [Benchmark(Description = "Linear")]
    public void Linear() => Run();
}

public class CpuSiLUBenchmarks() : CpuBenchmarks<SiLUWorkload>(DdpmCifar.SiLUs, (backend, w) => new SiLUFixture(backend, w))
{
    [Benchmark(Description = "SiLU")]
    public void SiLU() => Run();
}

public class CpuAddBenchmarks() : CpuBenchmarks<AddWorkload>(DdpmCifar.Adds, (backend, w) => new AddFixture(backend, w))
{
    [Benchmark(Description = "Add")]
    public void Add() => Run();
}

public class CpuConcatBenchmarks() : CpuBenchmarks<ConcatWorkload>(DdpmCifar.Concats, (backend, w) => new ConcatFixture(backend, w))
{
    [Benchmark(Description = "Concat")]
    public void Concat() => Run();
}

public class CpuUpsampleBenchmarks() : CpuBenchmarks<UpsampleWorkload>(DdpmCifar.Upsamples, (backend, w) => new UpsampleFixture(backend, w))
{
    [Benchmark(Description = "Upsample2x")]
    public void Upsample2x() => Run();
}

public class CpuTimestepEmbeddingBenchmarks()
    : CpuBenchmarks<TimestepEmbeddingWorkload>(DdpmCifar.TimestepEmbeddings, (backend, w) => new TimestepEmbeddingFixture(backend, w))
{
    [Benchmark(Description = "TimestepEmbedding")]
    public void TimestepEmbedding() => Run();
}

/// <summary>The fused per-step sample update of DDIM, DDPM and DPM-Solver++(2M).</summary>
public class CpuSamplerStepBenchmarks() : CpuBenchmarks<SamplerStepWorkload>(DdpmCifar.SamplerSteps, (backend, w) => new SamplerStepFixture(backend, w))
{
    [Benchmark(Description = "SamplerStep")]
    public void SamplerStep() => Run();
}

/// <summary>The whole ddpm-cifar10-32 forward, synthetic weights, t = 500.</summary>
public class CpuForwardBenchmarks() : CpuBenchmarks<ForwardWorkload>(DdpmCifar.Forwards, (backend, w) => new ForwardFixture(backend, w.Batch))
{
    [Benchmark(Description = "UNet2D.Forward")]
    public void Forward() => Run();
}

/// <summary>STREAM copy and triad on the backend's threads: the ceiling the memory-bound ops are judged against.</summary>
public class MemoryBandwidthBenchmarks() : CpuBenchmarks<BandwidthWorkload>(Machine.Bandwidths, (backend, w) => new BandwidthFixture(backend.Threads, w))
{
    [Benchmark(Description = "STREAM")]
    public void Stream() => Run();
}

/// <summary>The register-only FMA loop on one thread and on all: the peak the conv and attention GFLOP/s are read against.</summary>
public class FmaPeakBenchmarks() : CpuBenchmarks<FmaPeakWorkload>(Machine.FmaPeaks, (_, w) => new FmaPeakFixture(w))
{
    [Benchmark(Description = "FMA peak")]
    public void Peak() => Run();
}
