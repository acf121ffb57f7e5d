using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Sampling;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// clip_sample_range other than 1, read from JSON, clamps the predicted x0 of a DDIM and a DDPM step. Each step is
/// run through the fused kernel and compared with the scheduler's update written out in float64.
/// </summary>
public class ClipSampleRangeTests
{
    private const double Range = 0.5;
    private const double Tolerance = 1e-5;
    private static readonly int[] Shape = [2, 1, 8, 8];

    private static readonly SchedulerConfig Config =
        SchedulerConfig.Parse("""{"clip_sample": true, "clip_sample_range": 0.5}""", "clip.json");

    // Ten leading steps visit 900, 800, ..., 0; step 5 goes from t = 400 (ᾱ ≈ 0.2) to 300, where x0 = (x − √(1 − ᾱ)·m)/√ᾱ
    // of inputs in [−1, 1) spreads over about ±4.
    private const int StepIndex = 5;

    [Fact]
    public void Ddim_clips_x0_to_the_configured_range()
    {
        var ddim = new DdimScheduler(Config, 10, eta: 0);
        int t = (int)ddim.Timesteps[StepIndex];
        double a = ddim.Schedule.AlphasCumprod[t], ap = ddim.Schedule.AlphasCumprod[t - 100];
        float[] x = Random(81, 128), m = Random(82, 128);

        var (next, x0) = Apply(ddim.Step(StepIndex), x, m, null);

        var expectedX0 = ClippedX0(x, m, a);
        Compare(x0, expectedX0);
        // ε is the model output itself for epsilon prediction, unaffected by the clip.
        Compare(next, expectedX0.Select((c, i) => Math.Sqrt(ap) * c + Math.Sqrt(1 - ap) * m[i]).ToArray());
    }

    [Fact]
    public void Ddpm_clips_x0_to_the_configured_range()
    {
        var ddpm = new DdpmScheduler(Config, 10);
        int t = (int)ddpm.Timesteps[StepIndex], previous = (int)ddpm.Timesteps[StepIndex + 1];
        double a = ddpm.Schedule.AlphasCumprod[t], ap = ddpm.Schedule.AlphasCumprod[previous];
        double alpha = a / ap, beta = 1 - alpha;
        double sigma = Math.Sqrt((1 - ap) / (1 - a) * beta);
        float[] x = Random(83, 128), m = Random(84, 128), z = Random(85, 128);

        var (next, x0) = Apply(ddpm.Step(StepIndex), x, m, z);

        var expectedX0 = ClippedX0(x, m, a);
        Compare(x0, expectedX0);
        Compare(next, expectedX0.Select((c, i) =>
            Math.Sqrt(ap) * beta / (1 - a) * c + Math.Sqrt(alpha) * (1 - ap) / (1 - a) * x[i] + sigma * z[i]).ToArray());
    }

    /// <summary>
    /// x0 of an ε-predicting model clamped to ±<see cref="Range"/>; also checks that the inputs put values on both
    /// sides of 1, so a range of 1 (or no clip at all) would give a different answer.
    /// </summary>
    private static double[] ClippedX0(float[] x, float[] m, double alphaCumprod)
    {
        var raw = x.Select((v, i) => (v - Math.Sqrt(1 - alphaCumprod) * m[i]) / Math.Sqrt(alphaCumprod)).ToArray();
        raw.Count(v => Math.Abs(v) > Range && Math.Abs(v) < 1).Should().BePositive();
        raw.Count(v => Math.Abs(v) > 1).Should().BePositive();
        raw.Count(v => Math.Abs(v) < Range).Should().BePositive();
        return raw.Select(v => Math.Clamp(v, -Range, Range)).ToArray();
    }

    private static (float[] Next, float[] X0) Apply(SamplerStepPlan plan, float[] x, float[] m, float[]? z)
    {
        plan.NeedsNoise.Should().Be(z is not null);
        using var backend = new CpuBackend();
        using var xt = backend.Upload(x, Shape);
        using var mt = backend.Upload(m, Shape);
        using var zt = z is null ? null : backend.Upload(z, Shape);
        using var x0 = backend.Allocate(Shape);
        using var next = backend.Allocate(Shape);
        backend.SamplerStep(xt, mt, zt, null, x0, plan.Coefficients, next);
        return (Download(backend, next), Download(backend, x0));
    }

    private static void Compare(float[] actual, double[] expected)
    {
        actual.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
            ((double)actual[i]).Should().BeApproximately(expected[i], Tolerance, $"element {i}");
    }
}
