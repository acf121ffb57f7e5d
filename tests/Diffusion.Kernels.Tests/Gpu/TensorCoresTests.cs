using Diffusion.Kernels.Gpu;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>The half rounding version 3's emulated path uses must be the GPU's cvt.rn.f16.f32: round to nearest even.</summary>
public sealed class TensorCoresTests
{
    [Fact]
    public void RoundToHalf_rounds_to_nearest_even_like_System_Half()
    {
        var rng = new Random(14);
        var special = new[] { 0f, -0f, 65504f, 65519.99f, 65520f, -65520f, 6.1035156e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f,
            1.0009766f, 1.0004883f, 1.0014648f, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, float.Epsilon };
        var values = special.Concat(Enumerable.Range(0, 200_000).Select(i => i % 2 == 0
            ? BitConverter.Int32BitsToSingle(rng.Next()) * (rng.Next(2) == 0 ? 1 : -1)
            : (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-30, 20)))));

        foreach (float v in values.Where(v => !float.IsNaN(v)))
            TensorCores.RoundToHalf(v).Should().Be(BitConverter.HalfToUInt16Bits((System.Half)v), $"{v:R} rounds to the nearest half, ties to even");
        float.IsNaN((float)BitConverter.UInt16BitsToHalf(TensorCores.RoundToHalf(float.NaN))).Should().BeTrue();
    }
}
