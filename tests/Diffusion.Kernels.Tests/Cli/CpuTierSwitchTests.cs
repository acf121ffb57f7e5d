using Diffusion.Kernels.Backends.Cpu;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>DIFFUSION_CPU_TIER end to end: a forced tier is the one that runs and is named; a bad value is a usage error.</summary>
public sealed class CpuTierSwitchTests
{
    [Fact]
    public void A_forced_tier_runs_and_names_itself_in_the_device_line_and_every_bench_row()
    {
        var result = DiffuseProcess.RunWith(new Dictionary<string, string> { [CpuTiers.EnvironmentVariable] = "v128" },
            "bench", "--device", "cpu", "--ops", "sampler", "--batch", "1", "--iterations", "1", "--warmup", "0");

        result.ExitCode.Should().Be(0, result.StandardError);
        result.StandardError.Should().Contain("128-bit");
        if (CpuTiers.Best != CpuTier.V128) result.StandardError.Should().Contain("(forced by DIFFUSION_CPU_TIER)");
        var rows = result.StandardOutput.Split('\n').Where(l => l.StartsWith("sampler", StringComparison.Ordinal)).ToList();
        rows.Should().NotBeEmpty().And.OnlyContain(l => l.Contains(" cpu-v128 "));
    }

    [Fact]
    public void An_unknown_tier_is_a_one_line_usage_error_before_any_work()
    {
        var result = DiffuseProcess.RunWith(new Dictionary<string, string> { [CpuTiers.EnvironmentVariable] = "sse9" },
            "bench", "--device", "cpu", "--ops", "sampler", "--batch", "1");

        result.ExitCode.Should().Be(2, result.StandardError);
        result.StandardError.Trim().Should().Be("diffuse: DIFFUSION_CPU_TIER: unknown CPU tier 'sse9' (expected avx512, avx2 or v128)");
        result.StandardOutput.Should().BeEmpty();
    }
}
