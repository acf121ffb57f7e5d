using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

public class ElementwiseTests
{
    /// <summary>One float32 rounding plus exp's error: a few ulps of the output scale.</summary>
    private const double Tolerance = OpTolerance.Elementwise;

    /// <summary>(N, C, H, W): odd sizes whose length is no multiple of a vector, one element, and a U-Net level.</summary>
    public static IEnumerable<object[]> Shapes => TestBackends.WithBackends(
    [
        [2, 5, 7, 9],
        [1, 1, 1, 1],
        [3, 1, 1, 17],
        [1, 128, 32, 32],
        [1, 4, 32, 32],    // the same plane size with few channels, within the emulated device's budget
    ], row => 4L * (int)row[0] * (int)row[1] * (int)row[2] * (int)row[3]);

    [Theory]
    [MemberData(nameof(Shapes))]
    public void SiLU_matches_the_float64_reference_in_place_too(string backendName, int n, int c, int h, int w)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(50, n * c * h * w, -12f, 12f);
        var expected = x.Select(v => Reference.SiLU(v)).ToArray();
        using var xt = backend.Upload(x, n, c, h, w);
        using var yt = backend.Allocate(n, c, h, w);

        backend.SiLU(xt, yt);
        ShouldMatch(Download(backend, yt), expected, Tolerance, "SiLU");
        backend.SiLU(xt, xt);
        ShouldMatch(Download(backend, xt), expected, Tolerance, "in-place SiLU");
    }

    /// <summary>
    /// Each value within 4 ulp of x / (1 + e^−x) in float64, PyTorch's formula, across the whole float range and
    /// the specials: results under 1e−30 in size may be 0 (e^−x overflows first), −∞ gives NaN (−∞/∞) as in
    /// PyTorch, +∞ gives +∞. 35 values: two whole vectors and a scalar tail.
    /// </summary>
    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void SiLU_is_accurate_from_the_smallest_to_the_largest_input(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x =
        [
            float.NegativeInfinity, -3e38f, -1e30f, -200f, -88.73f, -88.5f, -88.01f, -87.9f, -60f, -20f, -3.3f, -1f,
            -1e-3f, -1e-30f, -0f, 0f, 1e-30f, 1e-3f, 0.7f, 1f, 5f, 20f, 60f, 88f, 100f, 1e30f, 3e38f,
            float.PositiveInfinity, float.NaN, -88.2f, -17.25f, 9.5f, -88.9f, -1e20f, 42f,
        ];
        using var xt = backend.Upload(x, 1, x.Length, 1, 1);
        using var yt = backend.Allocate(1, x.Length, 1, 1);
        backend.SiLU(xt, yt);
        float[] got = Download(backend, yt);

        for (int i = 0; i < x.Length; i++)
        {
            double v = x[i];
            double expected = double.IsNegativeInfinity(v) ? double.NaN : v / (1 + Math.Exp(-v));
            if (double.IsNaN(expected))
                float.IsNaN(got[i]).Should().BeTrue($"SiLU({x[i]}) is NaN, got {got[i]}");
            else if (double.IsInfinity(expected))
                ((double)got[i]).Should().Be(expected, $"SiLU({x[i]})");
            else
                Math.Abs(got[i] - expected).Should().BeLessThanOrEqualTo(Math.Max(4 * 1.1920929e-7 * Math.Abs(expected), 1e-30), $"SiLU({x[i]})");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Add_sums_then_scales_and_may_write_over_an_input(string backendName, int n, int c, int h, int w)
    {
        using var backend = TestBackends.Create(backendName);
        float[] a = Random(51, n * c * h * w), b = Random(52, n * c * h * w);
        const float scale = 0.7071f;
        var expected = a.Zip(b, (u, v) => ((double)u + v) * scale).ToArray();
        using var at = backend.Upload(a, n, c, h, w);
        using var bt = backend.Upload(b, n, c, h, w);
        using var yt = backend.Allocate(n, c, h, w);

        backend.Add(at, bt, yt, scale);
        ShouldMatch(Download(backend, yt), expected, Tolerance, "Add");
        backend.Add(at, bt, bt, scale);
        ShouldMatch(Download(backend, bt), expected, Tolerance, "Add into b");
        backend.Add(at, at, at, scale);
        ShouldMatch(Download(backend, at), a.Select(u => ((double)u + u) * scale).ToArray(), Tolerance, "Add of a to itself, into a");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Upsample2x_repeats_each_pixel_in_a_2x2_block(string backendName, int n, int c, int h, int w)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(53, n * c * h * w);
        var expected = new double[n * c * 4 * h * w];
        for (int plane = 0; plane < n * c; plane++)
        for (int oy = 0; oy < 2 * h; oy++)
        for (int ox = 0; ox < 2 * w; ox++)
            expected[(plane * 2 * h + oy) * 2 * w + ox] = x[(plane * h + oy / 2) * w + ox / 2];
        using var xt = backend.Upload(x, n, c, h, w);
        using var yt = backend.Allocate(n, c, 2 * h, 2 * w);

        backend.Upsample2x(xt, yt);
        ShouldMatch(Download(backend, yt), expected, 0, "nearest upsampling copies values exactly");
    }

    /// <summary>(N, Ca, Cb, H, W): uneven halves, single channels, and the U-Net's widest skip concatenation.</summary>
    public static IEnumerable<object[]> ConcatShapes => TestBackends.WithBackends(
    [
        [3, 4, 5, 3, 2],
        [2, 1, 1, 1, 7],
        [1, 256, 256, 8, 8],
        [1, 64, 64, 8, 8],
    ], row => (long)(int)row[0] * ((int)row[1] + (int)row[2]) * (int)row[3] * (int)row[4]);

    [Theory]
    [MemberData(nameof(ConcatShapes))]
    public void Concat_stacks_channels_per_image(string backendName, int n, int ca, int cb, int h, int w)
    {
        using var backend = TestBackends.Create(backendName);
        float[] a = Random(54, n * ca * h * w), b = Random(55, n * cb * h * w);
        var expected = new double[n * (ca + cb) * h * w];
        int plane = h * w;
        for (int img = 0; img < n; img++)
        {
            for (int i = 0; i < ca * plane; i++) expected[img * (ca + cb) * plane + i] = a[img * ca * plane + i];
            for (int i = 0; i < cb * plane; i++) expected[(img * (ca + cb) + ca) * plane + i] = b[img * cb * plane + i];
        }
        using var at = backend.Upload(a, n, ca, h, w);
        using var bt = backend.Upload(b, n, cb, h, w);
        using var yt = backend.Allocate(n, ca + cb, h, w);

        backend.Concat(at, bt, yt);
        ShouldMatch(Download(backend, yt), expected, 0, "concatenation copies values exactly");
    }

    public static IEnumerable<object[]> Embeddings => TestBackends.WithBackends(
    [
        [128, true, 0f],   // DDPM CIFAR: flip_sin_to_cos, freq_shift 0
        [32, false, 1f],   // diffusers' defaults
        [33, false, 1f],   // odd width: the last column is zero
    ]);

    [Theory]
    [MemberData(nameof(Embeddings))]
    public void TimestepEmbedding_follows_PyTorch_float32_order(string backendName, int dim, bool flip, float shift)
    {
        using var backend = TestBackends.Create(backendName);
        float[] timesteps = [0f, 1f, 37f, 999f];
        using var yt = backend.Allocate(timesteps.Length, dim);
        backend.TimestepEmbedding(timesteps, flip, shift, yt);
        float[] got = Download(backend, yt);

        // float32 PyTorch order: the argument t·freq carries float32 rounding (≈ 1e-4 at t = 999), which the
        // float64 definition does not; against the same float32 argument only sin/cos ulps remain.
        ShouldMatch(got, Reference.TimestepEmbedding(timesteps, dim, flip, shift), 2e-4, "float64 definition");
        ShouldMatch(got, Float32Embedding(timesteps, dim, flip, shift), 1e-6, "float32 PyTorch order");
        if (dim % 2 == 1) got[dim - 1].Should().Be(0f);
    }

    /// <summary>diffusers' get_timestep_embedding, one float32 operation at a time.</summary>
    private static double[] Float32Embedding(float[] timesteps, int dim, bool flip, float shift)
    {
        int half = dim / 2;
        var y = new double[timesteps.Length * dim];
        for (int b = 0; b < timesteps.Length; b++)
        for (int k = 0; k < half; k++)
        {
            float exponent = (float)-Math.Log(10000) * k;
            exponent /= half - shift;
            float angle = timesteps[b] * MathF.Exp(exponent);
            y[b * dim + k] = flip ? Math.Cos(angle) : Math.Sin(angle);
            y[b * dim + half + k] = flip ? Math.Sin(angle) : Math.Cos(angle);
        }
        return y;
    }
}
