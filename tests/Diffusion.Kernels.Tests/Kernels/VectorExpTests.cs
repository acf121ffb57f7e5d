using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Cpu.Simd;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Kernels;

/// <summary>
/// The CPU backend's float32 e^x (SiLU, softmax) against float64 Math.Exp. Tolerance: 4 ulps (4.8e-7 relative) on
/// normal results — the polynomial's truncation is below 6e-9, so what remains is float32 rounding of a dozen
/// operations; an error in a coefficient, the ln2 split or the exponent bits is off by far more. Subnormal results
/// are held to the spacing of subnormals. Every tier the host executes runs it (each forms 2^n its own way).
/// </summary>
public class VectorExpTests
{
    private const double RelativeTolerance = 4 * 1.1920929e-7;
    private const double SmallestSubnormal = 1.401298464324817e-45;

    public static TheoryData<string> Tiers => new(CpuTiers.All.Where(CpuTiers.IsSupported).Select(CpuTiers.Name).ToArray());

    [Theory]
    [MemberData(nameof(Tiers))]
    public void Matches_float64_exp_across_the_float_range(string tier)
    {
        var random = new Random(77);
        // Every sub-range the code treats differently: the softmax's (−∞, 0], the normal range, the subnormal
        // tail below −87.3, overflow above 88.7, and the clamped beyond.
        (float Lo, float Hi)[] ranges = [(-20f, 0f), (-1f, 1f), (-87.3f, 88.7f), (-110f, -87f), (88f, 100f)];
        double worst = 0;
        foreach (var (lo, hi) in ranges)
        {
            float[] x = KernelCheck.Random(random.Next(), 16 * 4096, lo, hi);
            float[] got = Exp(tier, x);
            for (int i = 0; i < x.Length; i += 16)
            {
                for (int lane = 0; lane < 16; lane++)
                {
                    double expected = Math.Exp(x[i + lane]);
                    float value = got[i + lane];
                    if (expected > float.MaxValue)
                    {
                        value.Should().Be(float.PositiveInfinity, $"e^{x[i + lane]:R} overflows float32");
                        continue;
                    }
                    double error = Math.Abs(value - expected);
                    double allowed = Math.Max(RelativeTolerance * expected, SmallestSubnormal);
                    error.Should().BeLessThanOrEqualTo(allowed, $"e^{x[i + lane]:R} = {expected:R}, got {value:R}");
                    if (expected >= 1.1754944e-38) worst = Math.Max(worst, error / expected);
                }
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"worst relative error on normal results: {worst:E2}");
    }

    [Theory]
    [MemberData(nameof(Tiers))]
    public void Special_values_come_out_as_exp_defines_them(string tier)
    {
        float[] x = [0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1e30f, -1e30f, float.MaxValue,
            float.MinValue, 88.7f, 88.73f, -103f, -104.5f, 1f, -1f, 0.5f];

        var got = Exp(tier, x);

        got[0].Should().Be(1f);
        got[1].Should().Be(1f);
        got[2].Should().Be(float.PositiveInfinity);
        got[3].Should().Be(0f);
        float.IsNaN(got[4]).Should().BeTrue("NaN must reach the non-finite check, not turn into a number");
        got[5].Should().Be(float.PositiveInfinity);
        got[6].Should().Be(0f);
        got[7].Should().Be(float.PositiveInfinity);
        got[8].Should().Be(0f);
        ((double)got[9]).Should().BeApproximately(Math.Exp(88.7f), RelativeTolerance * Math.Exp(88.7f), "near the largest finite result");
        got[10].Should().Be(float.PositiveInfinity);
        got[11].Should().Be(float.Epsilon, "e^-103 rounds to the smallest subnormal, not to zero");
        got[12].Should().Be(0f);
        ((double)got[13]).Should().BeApproximately(Math.E, RelativeTolerance * Math.E);
    }

    /// <summary>e^x of every element (x.Length a multiple of 16) through the tier's vectors.</summary>
    private static unsafe float[] Exp(string tier, float[] x)
    {
        var y = new float[x.Length];
        fixed (float* source = x, destination = y)
        {
            switch (CpuTiers.Parse(tier, "test"))
            {
                case CpuTier.Avx512: Exp<Simd512, Vector512<float>>(source, destination, x.Length); break;
                case CpuTier.Avx2: Exp<Simd256, Vector256<float>>(source, destination, x.Length); break;
                default: Exp<Simd128, Vector128<float>>(source, destination, x.Length); break;
            }
        }
        return y;
    }

    private static unsafe void Exp<T, TV>(float* x, float* y, int length) where T : struct, ISimd<TV> where TV : struct
    {
        for (int i = 0; i < length; i += T.Count) T.Store(VectorExp.Exp<T, TV>(T.Load(x + i)), y + i);
    }
}
