using Diffusion.Kernels.Gpu;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>
/// The float64 sine and cosine the timestep-embedding kernel evaluates itself rather than trust PTX's sin.approx
/// (kernels/TimestepEmbedding.cs), against .NET's Math.Sin/Cos over the arguments the U-Net produces (t·f up to
/// 1000) and beyond, both signs.
/// </summary>
public sealed class KernelMathTests
{
    [Fact]
    public void Sin_and_cos_are_float64_accurate_over_the_embedding_arguments()
    {
        var rng = new Random(5);
        double worst = 0;
        for (int i = 0; i < 20000; i++)
        {
            double x = (rng.NextDouble() * 2 - 1) * (i < 10000 ? 4 : 1100);
            worst = Math.Max(worst, Math.Abs(TimestepEmbedding.SinOrCos(x, sine: true) - Math.Sin(x)));
            worst = Math.Max(worst, Math.Abs(TimestepEmbedding.SinOrCos(x, sine: false) - Math.Cos(x)));
        }
        worst.Should().BeLessThan(1e-14, "the reduction by π/2 and the degree-17/18 polynomials are float64-exact to a few ulps");
        TimestepEmbedding.SinOrCos(0, sine: false).Should().Be(1);
        TimestepEmbedding.SinOrCos(Math.PI / 2, sine: true).Should().BeApproximately(1, 1e-16);
    }
}
