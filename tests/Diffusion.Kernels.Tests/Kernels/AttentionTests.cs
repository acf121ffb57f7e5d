using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Tests.Support;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

public class AttentionTests
{
    /// <summary>Outputs are convex combinations of v, so O(1); float32 scores and exp set the error.</summary>
    private const double Tolerance = OpTolerance.Attention;

    // batch, channels, heads, height, width
    public static IEnumerable<object[]> Shapes => TestBackends.WithBackends(
    [
        [1, 16, 1, 4, 4],     // the U-Net mid block's 16 tokens
        [2, 24, 2, 7, 5],     // 35 tokens: odd, not a multiple of any block
        [1, 36, 3, 3, 3],     // head dim 12: not a multiple of the register block
        [2, 32, 4, 15, 20],   // 300 tokens: several query blocks
        [1, 64, 1, 16, 16],   // 256 tokens, one wide head
        [1, 70, 1, 5, 5],     // head dim 70: three staging slices of channels, the last partial
        [2, 80, 2, 3, 4],     // head dim 40 over two heads and images, 12 tokens padded to 16 keys
    ], row => (long)(int)row[0] * (int)row[1] * (int)row[3] * (int)row[4], "attention");

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Attention_matches_the_float64_reference(string backendName, int n, int channels, int heads, int h, int w) =>
        CheckAgainstReference(backendName, n, channels, heads, h, w, Tolerance, "attention");

    /// <summary>
    /// The half-precision version: q, k, v and the softmax weights P rounded to half (11 significant bits) on the
    /// tensor cores, the softmax itself in float32. Rounded scores shift the exponentials by up to ~1e-3 relative;
    /// the cases below measured 4e-4 to 7.3e-4 of the output's scale on the emulated device.
    /// </summary>
    private const double HalfTolerance = 3e-3;

    // As Shapes: 16 tokens, one key tile; 35 tokens over two key tiles with head dim 12; head dim 70, two 64-column
    // blocks of O and two 64-channel chunks of S, the last partial.
    public static IEnumerable<object[]> HalfShapes => TestBackends.HalfPrecision("attention",
    [
        [1, 16, 1, 4, 4],
        [2, 24, 2, 7, 5],
        [1, 70, 1, 5, 5],
    ]);

    [Theory]
    [MemberData(nameof(HalfShapes))]
    public void Attention_in_half_precision_matches_the_float64_reference(string backendName, int n, int channels, int heads, int h, int w) =>
        CheckAgainstReference(backendName, n, channels, heads, h, w, HalfTolerance, "half-precision attention");

    private static void CheckAgainstReference(string backendName, int n, int channels, int heads, int h, int w, double tolerance, string what)
    {
        using var backend = TestBackends.Create(backendName);
        // Spread wide enough that softmax rows are far from uniform, so a wrong scale or max shows up.
        float[] qkv = Random(30, n * 3 * channels * h * w, -2f, 2f);

        using var qkvt = backend.Upload(qkv, n, 3 * channels, h, w);
        using var yt = backend.Allocate(n, channels, h, w);
        backend.Attention(qkvt, yt, heads);

        ShouldMatch(Download(backend, yt), Reference.Attention(qkv, n, channels, h * w, heads), tolerance,
            $"{what} {n}×{channels}×{h}×{w}, {heads} heads");
    }
}
