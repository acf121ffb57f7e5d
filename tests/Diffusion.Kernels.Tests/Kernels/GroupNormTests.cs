using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Tests.Support;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

public class GroupNormTests
{
    /// <summary>Normalised values are O(1); float32 rounding of x·scale + shift dominates the error.</summary>
    private const double Tolerance = OpTolerance.GroupNorm;

    // batch, channels, groups, height, width, silu, offset added to every input (tests centred variance)
    public static IEnumerable<object[]> Shapes => TestBackends.WithBackends(
    [
        [1, 32, 4, 5, 7, false, 0f],
        [2, 12, 3, 9, 9, true, 0f],
        [3, 64, 32, 4, 4, true, 0f],
        [1, 24, 8, 16, 16, false, 100f],   // |mean| ≫ std: a one-pass float variance would fail here
        [2, 6, 6, 1, 3, true, 0f],         // one channel per group, planes shorter than a vector
    ], _ => 0, "group_norm");

    [Theory]
    [MemberData(nameof(Shapes))]
    public void GroupNorm_matches_the_float64_reference(string backendName, int n, int c, int groups, int h, int w, bool silu, float offset)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(20, n * c * h * w, offset - 1f, offset + 1.5f);
        float[] gamma = Random(21, c, 0.5f, 1.5f);
        float[] beta = Random(22, c);
        const float eps = 1e-5f;

        using var xt = backend.Upload(x, n, c, h, w);
        using var gt = backend.Upload(gamma, c);
        using var bt = backend.Upload(beta, c);
        using var yt = backend.Allocate(n, c, h, w);
        backend.GroupNorm(xt, gt, bt, groups, eps, silu, yt);

        ShouldMatch(Download(backend, yt), Reference.GroupNorm(x, n, c, h * w, gamma, beta, groups, eps, silu), Tolerance,
            $"group norm {n}×{c}×{h}×{w}, {groups} groups");
    }

    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void GroupNorm_may_write_over_its_input(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(23, 2 * 16 * 6 * 6, -3f, 3f);
        float[] gamma = Random(24, 16, 0.5f, 1.5f);
        float[] beta = Random(25, 16);
        using var xt = backend.Upload(x, 2, 16, 6, 6);
        using var gt = backend.Upload(gamma, 16);
        using var bt = backend.Upload(beta, 16);
        backend.GroupNorm(xt, gt, bt, 4, 1e-6f, true, xt);

        ShouldMatch(Download(backend, xt), Reference.GroupNorm(x, 2, 16, 36, gamma, beta, 4, 1e-6, true), Tolerance, "in-place group norm");
    }
}
