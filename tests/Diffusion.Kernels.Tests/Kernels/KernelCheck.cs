using Diffusion.Kernels.Backends;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Kernels;

/// <summary>Random inputs and the error measure every kernel test uses.</summary>
internal static class KernelCheck
{
    /// <summary>Uniform values in [lo, hi), seeded; never all zero, so a kernel that writes nothing fails.</summary>
    public static float[] Random(int seed, long count, float lo = -1f, float hi = 1f)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (long i = 0; i < count; i++) data[i] = lo + (hi - lo) * rng.NextSingle();
        return data;
    }

    public static float[] Download(IBackend backend, DeviceTensor tensor)
    {
        var data = new float[tensor.Length];
        backend.Download(tensor, data);
        return data;
    }

    /// <summary>max |got − expected| divided by max |expected|: error relative to the output's scale.</summary>
    public static double NormalisedError(ReadOnlySpan<float> got, ReadOnlySpan<double> expected)
    {
        got.Length.Should().Be(expected.Length);
        double maxError = 0, scale = 0;
        for (int i = 0; i < got.Length; i++)
        {
            if (!double.IsFinite(got[i])) return double.PositiveInfinity;
            maxError = Math.Max(maxError, Math.Abs(got[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        scale.Should().BeGreaterThan(0, "a reference of all zeros cannot tell a broken kernel from a working one");
        return maxError / scale;
    }

    public static void ShouldMatch(float[] got, double[] expected, double tolerance, string what) =>
        NormalisedError(got, expected).Should().BeLessThanOrEqualTo(tolerance, what);
}
