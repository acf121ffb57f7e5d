using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>Betas, ᾱ and timesteps against values diffusers publishes or that weights/reference_schedulers.py computes.</summary>
public class ScheduleTableTests
{
    private static SchedulerConfig Config(string json) => SchedulerConfig.Parse(json, "test.json");

    [Theory]
    [InlineData("linear", "{}")]
    [InlineData("scaled_linear_0.00085_0.012", """{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}""")]
    [InlineData("squaredcos_cap_v2", """{"beta_schedule": "squaredcos_cap_v2"}""")]
    public void Betas_and_alphas_cumprod_match_the_float64_reference(string prefix, string json)
    {
        var golden = new GoldenFile(Path.Combine(RepositoryPaths.Goldens, "schedules.safetensors"));
        var schedule = new NoiseSchedule(Config(json));

        AssertRelative(schedule.Betas, golden.Values($"{prefix}.betas"), 1e-12);
        AssertRelative(schedule.AlphasCumprod, golden.Values($"{prefix}.alphas_cumprod"), 1e-12);
    }

    [Fact]
    public void Linear_betas_run_from_beta_start_to_beta_end()
    {
        var schedule = new NoiseSchedule(SchedulerConfig.Default);
        schedule.Betas[0].Should().Be(1e-4);
        schedule.Betas[999].Should().Be(0.02);
        schedule.Betas[500].Should().BeApproximately(1e-4 + 500 * (0.02 - 1e-4) / 999, 1e-17);
        // The DDPM paper's schedule leaves ᾱ_999 ≈ 4.0358e-5 of the signal variance at the last step.
        schedule.AlphasCumprod[999].Should().BeApproximately(4.0358e-5, 1e-9);
    }

    [Fact]
    public void Cosine_betas_follow_the_capped_alpha_bar_ratio()
    {
        var schedule = new NoiseSchedule(Config("""{"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 50}"""));
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        for (int i = 0; i < 50; i++)
            schedule.Betas[i].Should().BeApproximately(Math.Min(1 - AlphaBar((i + 1) / 50.0) / AlphaBar(i / 50.0), 0.999), 1e-15);
        schedule.Betas[49].Should().Be(0.999, "the last β hits the cap");
    }

    [Fact]
    public void Ddim_leading_50_steps_with_offset_1_are_981_down_to_1()
    {
        var ddim = new DdimScheduler(Config("""{"steps_offset": 1}"""), 50, eta: 0);
        ddim.Timesteps.Should().Equal(Enumerable.Range(0, 50).Select(i => (float)(981 - 20 * i)));
    }

    [Fact]
    public void Trailing_and_linspace_spacings_match_diffusers()
    {
        new DdimScheduler(Config("""{"timestep_spacing": "trailing"}"""), 10, 0).Timesteps
            .Should().Equal(999, 899, 799, 699, 599, 499, 399, 299, 199, 99);
        // linspace(0, 999, 7) = 0, 166.5, 333, 499.5, ...: the halves round to even (166, 500, 832).
        new DdimScheduler(Config("""{"timestep_spacing": "linspace"}"""), 7, 0).Timesteps
            .Should().Equal(999, 832, 666, 500, 333, 166, 0);
        new DdpmScheduler(Config("""{"timestep_spacing": "trailing"}"""), 7).Timesteps
            .Should().Equal(999, 856, 713, 570, 428, 285, 142);
    }

    [Fact]
    public void Ddpm_with_all_train_steps_visits_every_timestep()
    {
        var ddpm = new DdpmScheduler(SchedulerConfig.Default, 1000);
        ddpm.Timesteps.Should().Equal(Enumerable.Range(0, 1000).Reverse().Select(t => (float)t));
        ddpm.Step(999).NeedsNoise.Should().BeFalse("t = 0 adds no noise");
        ddpm.Step(998).NeedsNoise.Should().BeTrue();
    }

    [Fact]
    public void Dpm_solver_drops_the_last_of_n_plus_1_linspace_points()
    {
        var dpm = new DpmSolverMultistepScheduler(SchedulerConfig.Default, 8);
        dpm.Timesteps.Should().Equal(999, 874, 749, 624, 500, 375, 250, 125);
        dpm.Sigmas[^1].Should().Be(0);
        var table = new NoiseSchedule(SchedulerConfig.Default).Sigmas();
        dpm.Sigmas[0].Should().Be(table[999]);
    }

    [Fact]
    public void Euler_ancestral_timesteps_are_fractional_and_x_T_is_scaled_by_the_largest_sigma()
    {
        var euler = new EulerAncestralScheduler(SchedulerConfig.Default, 5);
        euler.Timesteps.Should().Equal(999f, 749.25f, 499.5f, 249.75f, 0f);
        euler.InitNoiseSigma.Should().BeApproximately(157.40728081040757, 1e-9);
        // σ(749.25) interpolates the table between 749 and 750.
        var table = new NoiseSchedule(SchedulerConfig.Default).Sigmas();
        euler.Sigmas[1].Should().BeApproximately(table[749] + 0.25 * (table[750] - table[749]), 1e-12);
        euler.Sigmas[1].Should().BeApproximately(17.27988742892728, 1e-9);
        euler.Step(0).InputScale.Should().BeApproximately((float)(1 / Math.Sqrt(157.40728081040757 * 157.40728081040757 + 1)), 1e-9f);
    }

    [Fact]
    public void Ddpm_previous_timestep_is_the_next_listed_one_as_in_diffusers()
    {
        // trailing 7 steps: 999, 856, ...; diffusers' DDPMScheduler.previous_timestep returns the next entry (856),
        // not 999 − 1000 // 7 = 857, and −1 (ᾱ = 1) after the last.
        var config = Config("""{"timestep_spacing": "trailing", "clip_sample": false}""");
        var ddpm = new DdpmScheduler(config, 7);
        var schedule = new NoiseSchedule(config);
        double a = schedule.AlphasCumprod[999], ap = schedule.AlphasCumprod[856];
        ddpm.Step(0).Coefficients.NextFromX0.Should().BeApproximately((float)(Math.Sqrt(ap) * (1 - a / ap) / (1 - a)), 1e-7f);
        double aLast = schedule.AlphasCumprod[142];
        ddpm.Step(6).Coefficients.NextFromX0.Should().BeApproximately((float)(1 * (1 - aLast) / (1 - aLast)), 1e-7f);
        ddpm.Step(6).Coefficients.NextFromSample.Should().Be(0f, "ᾱ_prev = 1 leaves nothing of x_t");
    }

    private static void AssertRelative(IReadOnlyList<double> actual, double[] expected, double tolerance)
    {
        actual.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
            Math.Abs(actual[i] - expected[i]).Should().BeLessThanOrEqualTo(tolerance * Math.Abs(expected[i]), $"element {i}");
    }
}
