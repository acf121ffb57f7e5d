using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Tests.Support;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

public class LinearTests
{
    /// <summary>Dot products of a few hundred float32 terms against float64.</summary>
    private const double Tolerance = OpTolerance.Linear;

    // rows, in features, out features, SiLU on input
    public static IEnumerable<object[]> Shapes => TestBackends.WithBackends(
    [
        [1, 128, 512, false],   // time embedding linear_1 of the DDPM CIFAR U-Net
        [3, 512, 512, true],    // linear_2 with the SiLU between them, batch 3
        [2, 37, 19, false],     // sizes off every vector width
        [4, 512, 256, true],    // a resnet's time_emb_proj on SiLU(temb)
    ], _ => 0, "linear");

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Linear_matches_the_float64_reference(string backendName, int rows, int inF, int outF, bool siluInput)
    {
        using var backend = TestBackends.Create(backendName);
        float[] x = Random(40, rows * inF, -3f, 3f);
        float[] weight = Random(41, outF * inF, -0.2f, 0.2f);
        float[] bias = Random(42, outF);

        using var weights = backend.PrepareLinear(inF, outF, weight, bias);
        using var xt = backend.Upload(x, rows, inF);
        using var yt = backend.Allocate(rows, outF);
        backend.Linear(xt, weights, yt, siluInput);

        ShouldMatch(Download(backend, yt), Reference.Linear(x, rows, inF, outF, weight, bias, siluInput), Tolerance,
            $"linear {rows}×{inF} -> {outF}");
    }
}
