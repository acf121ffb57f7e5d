using System.Diagnostics;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Cuda;

namespace Diffusion.Kernels.Tests.Support;

/// <summary>
/// The backends every kernel test runs on: one test body, a [Theory] over <see cref="Names"/>. To add a backend,
/// list its name and create it in <see cref="Create"/>; call Assert.Skip there when its device is missing. The CPU
/// backend appears once per ISA tier this host executes (cpu-avx512, cpu-avx2, cpu-v128); the tiers it cannot run
/// are reported once, by CpuTierTests, rather than as a skip in every test.
/// </summary>
public static class TestBackends
{
    public static TheoryData<string> Names => new(CpuNames.Append("cuda").ToArray());

    /// <summary>cpu-avx512, cpu-avx2, cpu-v128: the tiers this host executes, fastest first.</summary>
    public static IEnumerable<string> CpuNames => CpuTiers.All.Where(CpuTiers.IsSupported).Select(t => "cpu-" + CpuTiers.Name(t));

    public static IBackend Create(string name) => name switch
    {
        _ when name.StartsWith("cpu-", StringComparison.Ordinal) => new CpuBackend(tier: CpuTiers.Parse(name[4..], "test backend")),
        "cuda" => CudaBackend.TryCreate(out var cuda, out string reason) ? cuda! : throw SkipNoGpu(reason),
        _ => throw new ArgumentException($"unknown test backend '{name}'", nameof(name)),
    };

    private static Exception SkipNoGpu(string reason)
    {
        Assert.Skip("no usable CUDA GPU: " + reason);
        return new UnreachableException();
    }

    /// <summary>Every combination of a backend name with one row of op parameters.</summary>
    public static IEnumerable<object[]> WithBackends(IEnumerable<object[]> cases)
    {
        foreach (string name in Names)
        {
            foreach (object[] row in cases)
                yield return [name, .. row];
        }
    }
}
