using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

public class SamplerStepTests
{
    /// <summary>A handful of float32 multiply-adds per element.</summary>
    private const double Tolerance = OpTolerance.Elementwise;

    private static readonly int[] Shape = [2, 3, 5, 7];

    private static double[] Expected(float[] x, float[] m, float[]? z, float[]? prev, SamplerStepCoefficients c, out double[] x0)
    {
        var next = new double[x.Length];
        x0 = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            x0[i] = Math.Clamp((double)c.X0FromSample * x[i] + (double)c.X0FromModel * m[i], -c.ClipRange, c.ClipRange);
            double eps = (double)c.EpsFromSample * x[i] + (double)c.EpsFromModel * m[i];
            next[i] = c.NextFromX0 * x0[i] + c.NextFromEps * eps + c.NextFromSample * x[i]
                + (prev == null ? 0 : c.NextFromPrevX0 * prev[i]) + (z == null ? 0 : c.NextFromNoise * z[i]);
        }
        return next;
    }

    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void SamplerStep_applies_every_term_and_clips_x0(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(60, 210, -3f, 3f), m = Random(61, 210, -3f, 3f), z = Random(62, 210), prev = Random(63, 210);
        var c = new SamplerStepCoefficients(1.3f, -0.8f, 1f, 0.4f, 0.9f, 0.6f, -0.3f, 0.2f, 0.15f, 0.05f);
        var expected = Expected(x, m, z, prev, c, out var x0);
        using var xt = backend.Upload(x, Shape);
        using var mt = backend.Upload(m, Shape);
        using var zt = backend.Upload(z, Shape);
        using var pt = backend.Upload(prev, Shape);
        using var x0t = backend.Allocate(Shape);
        using var next = backend.Allocate(Shape);

        backend.SamplerStep(xt, mt, zt, pt, x0t, c, next);

        ShouldMatch(Download(backend, next), expected, Tolerance, "next sample");
        ShouldMatch(Download(backend, x0t), x0, Tolerance, "x0");
        Download(backend, x0t).Should().OnlyContain(v => v >= -1f && v <= 1f);
    }

    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void SamplerStep_may_update_the_sample_in_place_without_noise(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(64, 210, -3f, 3f), m = Random(65, 210, -3f, 3f);
        var c = new SamplerStepCoefficients(1.1f, -0.5f, float.PositiveInfinity, 0.3f, 0.8f, 0.7f, 0.25f, -0.1f, 0f, 0f);
        var expected = Expected(x, m, null, null, c, out _);
        using var xt = backend.Upload(x, Shape);
        using var mt = backend.Upload(m, Shape);

        backend.SamplerStep(xt, mt, null, null, null, c, xt);

        ShouldMatch(Download(backend, xt), expected, Tolerance, "in-place step");
    }

    /// <summary>
    /// Both backends round every product and sum to float32, left to right, without fused multiply-adds, so a sampler
    /// run gives the same bits on the CPU and the GPU; the float32 loop below is that order.
    /// </summary>
    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void SamplerStep_is_float32_arithmetic_in_a_fixed_order_to_the_bit(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(68, 210, -3f, 3f), m = Random(69, 210), z = Random(70, 210), prev = Random(71, 210);
        var c = new SamplerStepCoefficients(1.3f, -0.7f, 1f, 0.2f, 0.9f, 0.6f, 0.3f, 0.1f, -0.4f, 0.05f);
        var expectedX0 = new float[x.Length];
        var expectedNext = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float x0 = Math.Clamp(c.X0FromSample * x[i] + c.X0FromModel * m[i], -c.ClipRange, c.ClipRange);
            float eps = c.EpsFromSample * x[i] + c.EpsFromModel * m[i];
            expectedX0[i] = x0;
            expectedNext[i] = c.NextFromX0 * x0 + c.NextFromEps * eps + c.NextFromSample * x[i] + c.NextFromPrevX0 * prev[i] + c.NextFromNoise * z[i];
        }
        using var xt = backend.Upload(x, Shape);
        using var mt = backend.Upload(m, Shape);
        using var zt = backend.Upload(z, Shape);
        using var pt = backend.Upload(prev, Shape);
        using var x0t = backend.Allocate(Shape);

        backend.SamplerStep(xt, mt, zt, pt, x0t, c, xt); // next aliases sample

        Download(backend, x0t).Should().Equal(expectedX0);
        Download(backend, xt).Should().Equal(expectedNext);
    }

    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void SamplerStep_rejects_a_missing_noise_tensor_with_a_nonzero_coefficient(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        using var xt = backend.Upload(Random(66, 210), Shape);
        using var mt = backend.Upload(Random(67, 210), Shape);
        var c = new SamplerStepCoefficients(1f, 0f, 1f, 0f, 1f, 1f, 0f, 0f, 0f, 0.5f);

        backend.Invoking(b => b.SamplerStep(xt, mt, null, null, null, c, xt)).Should().Throw<BackendArgumentException>();
    }
}
