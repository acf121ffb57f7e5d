using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

/// <summary>
/// The ISA tiers themselves: which run here, how one is forced, and that a backend never runs another tier's packed
/// weights. The kernels are checked per tier by every other kernel test, through TestBackends' cpu-* rows.
/// </summary>
public class CpuTierTests
{
    /// <summary>The one place a tier this host cannot execute shows up: a single skip naming them all.</summary>
    [Fact]
    public void Every_tier_runs_on_this_host()
    {
        var missing = CpuTiers.All.Where(t => !CpuTiers.IsSupported(t)).Select(CpuTiers.Name).ToList();
        if (missing.Count > 0)
            Assert.Skip($"this CPU cannot execute the {string.Join(", ", missing)} tier(s); the kernel tests ran on {string.Join(", ", TestBackends.CpuNames)}");
        TestBackends.CpuNames.Should().HaveCount(CpuTiers.All.Count);
    }

    [Fact]
    public void The_128_bit_tier_runs_everywhere_and_the_best_tier_is_executable()
    {
        CpuTiers.IsSupported(CpuTier.V128).Should().BeTrue();
        CpuTiers.IsSupported(CpuTiers.Best).Should().BeTrue();
    }

    [Theory]
    [InlineData("avx512", CpuTier.Avx512)]
    [InlineData("AVX2", CpuTier.Avx2)]
    [InlineData(" v128 ", CpuTier.V128)]
    public void Tier_names_parse(string name, CpuTier tier) => CpuTiers.Parse(name, "test").Should().Be(tier);

    [Fact]
    public void An_unknown_tier_name_is_a_one_line_error_listing_the_names()
    {
        var act = () => CpuTiers.Parse("sse9", CpuTiers.EnvironmentVariable);
        act.Should().Throw<CpuTierException>().WithMessage("DIFFUSION_CPU_TIER: unknown CPU tier 'sse9' (expected avx512, avx2 or v128)");
    }

    [Fact]
    public void A_forced_tier_shows_in_the_device_line()
    {
        using var backend = new CpuBackend(threads: 1, tier: CpuTier.V128);
        backend.Tier.Should().Be(CpuTier.V128);
        backend.DeviceDescription.Should().Contain("128-bit");
        if (CpuTiers.Best != CpuTier.V128) backend.DeviceDescription.Should().EndWith("(forced by the tier option)");
    }

    [Fact]
    public void A_tier_the_host_cannot_execute_is_refused_not_emulated()
    {
        var missing = CpuTiers.All.Where(t => !CpuTiers.IsSupported(t)).ToList();
        if (missing.Count == 0) Assert.Skip("this CPU executes every tier");
        var act = () => new CpuBackend(tier: missing[0]);
        act.Should().Throw<CpuTierException>().WithMessage($"CpuBackend: this CPU cannot execute the {CpuTiers.Name(missing[0])} tier*");
    }

    /// <summary>Packed panels follow the tier's MR and NR, so another tier would read them as garbage.</summary>
    [Fact]
    public void Weights_packed_for_one_tier_are_refused_by_another()
    {
        var tiers = CpuTiers.All.Where(CpuTiers.IsSupported).ToList();
        if (tiers.Count < 2) Assert.Skip("one tier only on this CPU");
        using var packer = new CpuBackend(threads: 1, tier: tiers[0]);
        using var runner = new CpuBackend(threads: 1, tier: tiers[^1]);
        var spec = Conv2dSpec.Same3x3(4, 6);
        using var weights = packer.PrepareConv2d(spec, Random(1, 6 * 4 * 9), Random(2, 6));
        using var x = runner.Upload(Random(3, 4 * 5 * 5), 1, 4, 5, 5);
        using var y = runner.Allocate(1, 6, 5, 5);

        runner.Invoking(b => b.Conv2d(x, weights, y)).Should().Throw<BackendArgumentException>()
            .WithMessage($"Conv2d: the weights were packed for the {CpuTiers.Name(tiers[0])} tier, this backend runs {CpuTiers.Name(tiers[^1])}");
    }
}
