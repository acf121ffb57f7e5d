using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

public class Conv2dTests
{
    /// <summary>float32 sums of up to a few thousand products against the float64 reference.</summary>
    private const double Tolerance = OpTolerance.Conv2d;

    // batch, in channels, out channels, height, width, kernel, stride, pad before, pad after
    public static IEnumerable<object[]> Shapes => TestBackends.WithBackends(
    [
        [1, 3, 5, 7, 9, 3, 1, 1, 1],      // odd, non-square, channels below one register block
        [2, 16, 32, 8, 8, 3, 1, 1, 1],    // batch 2: pixel panels span both images
        [3, 17, 19, 6, 11, 3, 1, 1, 1],   // channel counts that are not multiples of 8 or 16
        [1, 40, 24, 10, 10, 3, 1, 1, 1],  // 360 patch rows: more than one K block
        [5, 12, 20, 4, 4, 3, 1, 1, 1],    // 4×4 at batch 5, the U-Net's smallest level; a last panel of 16: the narrow micro-kernel
        // At most 16 output pixels take the transposed few-pixel path:
        [1, 24, 40, 4, 4, 3, 1, 1, 1],    // 4×4 at batch 1: two full 8-pixel blocks, a partial channel panel
        [1, 70, 45, 3, 3, 3, 1, 1, 1],    // 9 pixels: a partial pixel block; 630 patch rows, five K blocks
        [2, 9, 70, 2, 3, 3, 1, 1, 1],     // 12 pixels over two images, three channel panels for two threads
        [1, 40, 36, 8, 8, 3, 2, 0, 1],    // stride-2 downsample to 4×4, diffusers downsample_padding = 0
        [3, 20, 12, 2, 2, 1, 1, 0, 0],    // 1×1 over 12 pixels of three images
        // Padded stride-1 convs with at most 3 output channels take the direct few-channel path:
        [1, 128, 3, 32, 32, 3, 1, 1, 1],  // the U-Net's conv_out: 17 chunks of 64 over rows of 34
        [2, 9, 3, 7, 10, 3, 1, 1, 1],     // two images, chunks crossing rows, a short last chunk
        [1, 6, 4, 9, 9, 3, 1, 1, 1],      // 4 output channels: the direct path again
        [1, 5, 1, 6, 5, 5, 1, 2, 2],      // 5×5 kernel, one output channel
        [3, 6, 2, 5, 13, 3, 1, 0, 1],     // padding after only
        [1, 8, 8, 33, 35, 3, 1, 1, 1],    // rows longer than one 32-column panel
        [2, 20, 12, 5, 7, 1, 1, 0, 0],    // 1×1 shortcut
        [2, 8, 12, 9, 7, 3, 2, 1, 1],     // stride-2 downsample, symmetric padding
        [1, 5, 6, 8, 8, 3, 2, 0, 1],      // stride-2 downsample, diffusers downsample_padding = 0
        [2, 7, 9, 9, 6, 3, 2, 0, 1],      // the same on odd sizes
        [1, 4, 6, 34, 36, 3, 2, 0, 1],    // stride 2 with output rows of 17×18: the vectorised strided copy
        [2, 6, 10, 24, 26, 3, 2, 0, 1],   // output rows of 13: the strided copy finishes 8 + 4 + 1 on AVX-512 and AVX2
        [2, 3, 5, 33, 32, 3, 2, 1, 1],    // the same with symmetric padding, odd height
        [1, 5, 7, 11, 10, 3, 3, 1, 1],    // stride 3: runs of step 3, copied by the scalar loop
        [2, 6, 5, 9, 8, 1, 2, 0, 0],      // unpadded 1×1 at stride 2: still padded (strided), borders never read
        [1, 3, 4, 8, 64, 3, 2, 0, 1],     // stride 2, output rows of 32: every panel one strided run on every tier
        [1, 6, 5, 4, 32, 1, 1, 0, 0],     // 1×1 over one 4×32 image: every panel one contiguous run on every tier
        // 3×3 same-size convs with ≥ 16 channels take the Winograd path: F(4×4) on images of ≥ 16 4×4 tiles, else
        // F(2×2) on even images of ≥ 16 2×2 tiles:
        [1, 64, 48, 16, 16, 3, 1, 1, 1],  // F(4×4), 16 tiles in rows of 4: contiguous runs at 4 and 8 lanes
        [1, 16, 20, 8, 32, 3, 1, 1, 1],   // F(4×4), rows of 8 tiles: contiguous runs at 16 lanes too
        [4, 20, 24, 8, 8, 3, 1, 1, 1],    // F(4×4), 16 tiles from four images
        [1, 24, 16, 20, 24, 3, 1, 1, 1],  // F(4×4), 30 tiles in rows of 6: a partial last panel, gathers at 8 and 16 lanes
        [1, 300, 20, 16, 16, 3, 1, 1, 1], // F(4×4), 300 channels: two K blocks, a partial lane block
        [2, 16, 24, 8, 12, 3, 1, 1, 1],   // F(2×2), 48 tiles over two images, rows of 6 tiles: a narrow last panel
        [1, 32, 40, 8, 20, 3, 1, 1, 1],   // F(2×2), 40 tiles: 8 in the last panel
        [1, 300, 20, 8, 18, 3, 1, 1, 1],  // F(2×2), 36 tiles, 300 channels: two K blocks, a partial lane block
        [9, 24, 17, 4, 4, 3, 1, 1, 1],    // F(2×2), 4×4 at batch 9: tiles from nine images in one panel
        [1, 32, 40, 8, 8, 3, 1, 1, 1],    // F(2×2), 16 tiles: one narrow panel, output channels split across threads
        [1, 32, 40, 6, 4, 3, 1, 1, 1],    // 6 tiles: stays on the direct path
        [1, 16, 24, 32, 34, 3, 1, 1, 1],  // F(2×2), 272 tiles: tasks of several panels, a partial last panel
        [2, 20, 18, 2, 32, 3, 1, 1, 1],   // F(2×2), rows of 16 tiles, read and written as contiguous runs; one tile row per image
        [1, 256, 256, 16, 16, 3, 1, 1, 1], // F(4×4) on the U-Net's 256-channel 16×16 level: accuracy at full depth (5e-6)
        [1, 512, 16, 16, 16, 3, 1, 1, 1], // F(4×4) over 512 channels, the U-Net's widest (skip concat): 5e-6 as well
        // The tiers' own edges (MR = 8 rows and 32 columns on AVX-512, 6 and 16 on AVX2, 6 and 8 on x86 128-bit):
        [1, 20, 13, 3, 4, 3, 1, 1, 1],    // 12 pixels: the few-pixel limit of 6-row tiers (2·MR); 13 channels off every MR
        [1, 20, 13, 13, 1, 3, 1, 1, 1],   // 13 pixels down a 1-wide image: the direct path on 6-row tiers, a single panel
        [2, 16, 30, 12, 12, 3, 1, 1, 1],  // F(4×4), rows of 3 tiles: gathers on every tier; 30 = 5 six-row blocks
        [1, 8, 7, 3, 3, 3, 1, 1, 1],      // 9 pixels, 7 channels: a partial 6-row pixel block and a partial channel panel
        [1, 256, 16, 16, 16, 3, 1, 1, 1],  // full depth (2304 products per output) within the emulated device's budget
        [1, 8, 56, 8, 8, 3, 1, 1, 1],     // 56 channels × 64 pixels: every accumulator of GPU version 2's 64 × 64 tile is stored
        [2, 20, 40, 5, 7, 1, 1, 0, 0],    // 1×1 and 5×5 with more than 32 output channels: GPU version 2's wide tile for
        [1, 6, 40, 6, 5, 5, 1, 2, 2],     // a fixed and a run-time kernel size
    ], row => ConvOutputs(row), "conv2d");

    /// <summary>Output values of a Shapes row, for the emulated device's budget.</summary>
    private static long ConvOutputs(object[] row)
    {
        var spec = new Conv2dSpec((int)row[1], (int)row[2], (int)row[5], (int)row[6], (int)row[7], (int)row[8]);
        return (long)(int)row[0] * spec.OutChannels * spec.OutputSize((int)row[3]) * spec.OutputSize((int)row[4]);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Conv2d_matches_the_float64_reference(string backendName, int n, int cin, int cout, int h, int w, int kernel, int stride, int padBegin, int padEnd)
    {
        using var backend = TestBackends.Create(backendName);
        var spec = new Conv2dSpec(cin, cout, kernel, stride, padBegin, padEnd);
        float[] x = Random(1, n * cin * h * w);
        float[] weight = Random(2, cout * cin * kernel * kernel, -0.3f, 0.3f);
        float[] bias = Random(3, cout);
        int ho = spec.OutputSize(h), wo = spec.OutputSize(w);

        using var weights = backend.PrepareConv2d(spec, weight, bias);
        using var xt = backend.Upload(x, n, cin, h, w);
        using var yt = backend.Allocate(n, cout, ho, wo);
        backend.Conv2d(xt, weights, yt);

        ShouldMatch(Download(backend, yt), Reference.Conv2d(x, n, cin, h, w, weight, bias, cout, kernel, stride, padBegin, padEnd),
            Tolerance, $"{spec} on {n}×{cin}×{h}×{w}");
    }

    // threads, then batch, in channels, out channels, height, width, kernel, stride, pad before, pad after
    public static IEnumerable<object[]> SplitKShapes =>
        from tier in TestBackends.CpuNames
        from row in new object[][]
        {
            [2, 1, 128, 20, 5, 5, 3, 1, 1, 1],  // 25 columns, 1152 patch rows: the second half starts inside a K block
            [3, 1, 128, 20, 5, 5, 3, 1, 1, 1],  // three shares of 384
            [2, 1, 256, 24, 4, 4, 3, 1, 1, 1],  // a 4×4 level at batch 1 (the direct path below AVX-512): 2304 rows
            [3, 1, 128, 30, 8, 8, 3, 2, 1, 1],  // a stride-2 downsample to 4×4, 1152 rows in three shares of 384
            [2, 1, 1100, 10, 3, 3, 1, 1, 0, 0], // 1×1, 9 columns of 1100 rows: the few-pixel path on every tier
            [2, 2, 64, 20, 5, 5, 3, 1, 1, 1],   // 576 rows: too shallow to split, channel groups as before
        }
        select (object[])[tier, .. row];

    /// <summary>
    /// Few columns and deep K: with two or more threads the direct path splits K between them and adds their
    /// partial sums before the epilogue. The thread counts are explicit, so the split runs on any host.
    /// </summary>
    [Theory]
    [MemberData(nameof(SplitKShapes))]
    public void A_conv_split_over_K_matches_the_float64_reference(string backendName, int threads, int n, int cin, int cout, int h, int w, int kernel, int stride, int padBegin, int padEnd)
    {
        using var backend = new CpuBackend(threads, CpuTiers.Parse(backendName[4..], "test backend"));
        var spec = new Conv2dSpec(cin, cout, kernel, stride, padBegin, padEnd);
        var (actual, expected) = ConvWithEpilogue(backend, spec, n, h, w);
        ShouldMatch(actual, expected, Tolerance, $"{spec} on {n}×{cin}×{h}×{w}, {threads} threads");
    }

    /// <summary>
    /// Runs <paramref name="spec"/> on random inputs with the epilogue asked for (by default a channel bias, a residual
    /// and scale 0.5): the output and its float64 reference.
    /// </summary>
    private static (float[] Actual, double[] Expected) ConvWithEpilogue(IBackend backend, Conv2dSpec spec, int n, int h, int w,
        bool channelBias = true, bool residual = true, float scale = 0.5f)
    {
        int cin = spec.InChannels, cout = spec.OutChannels, kernel = spec.Kernel;
        float[] x = Random(1, n * cin * h * w);
        float[] weight = Random(2, cout * cin * kernel * kernel, -0.3f, 0.3f);
        float[] bias = Random(3, cout);
        float[] perChannel = Random(7, n * cout, -2f, 2f);
        int ho = spec.OutputSize(h), wo = spec.OutputSize(w);
        float[] skip = Random(8, n * cout * ho * wo, -2f, 2f);

        using var weights = backend.PrepareConv2d(spec, weight, bias);
        using var xt = backend.Upload(x, n, cin, h, w);
        using var cbt = backend.Upload(perChannel, n, cout);
        using var rt = backend.Upload(skip, n, cout, ho, wo);
        using var yt = backend.Allocate(n, cout, ho, wo);
        backend.Conv2d(xt, weights, yt, new Conv2dEpilogue(channelBias ? cbt : null, residual ? rt : null, scale));

        var expected = Reference.Conv2d(x, n, cin, h, w, weight, bias, cout, kernel, spec.Stride, spec.PadBegin, spec.PadEnd,
            channelBias ? perChannel : null, residual ? skip : null, scale);
        return (Download(backend, yt), expected);
    }

    // channel bias, residual, scale, then the shape: (2, cin, h, w) → cout; the 8×8 and 6×6 rows take the Winograd F(2×2)
    // path (6×6: one lane at a time on every tier), the 16×16 and 12×12 rows F(4×4) (12×12: one lane at a time),
    // the 2×2 row (8 pixels) the few-pixel path, the 3-channel row the few-channel path, the 128-channel 5×5 row (50 columns,
    // 1152 patch rows) the split-K direct path on the 256- and 512-bit tiers.
    public static IEnumerable<object[]> Epilogues => TestBackends.WithBackends(
    [
        [true, false, 1f, 9, 11, 6, 5],
        [false, true, 1f, 9, 11, 6, 5],
        [false, false, 0.7071f, 9, 11, 6, 5],
        [true, true, 0.5f, 9, 11, 6, 5],
        [true, false, 1f, 32, 20, 8, 8],
        [false, true, 0.7071f, 32, 20, 8, 8],
        [true, true, 0.5f, 32, 20, 8, 8],
        [true, true, 0.5f, 16, 24, 16, 16],
        [true, true, 0.5f, 16, 20, 12, 12],
        [true, true, 0.5f, 16, 20, 6, 6],
        [true, true, 0.5f, 9, 40, 2, 2],
        [true, true, 0.5f, 12, 3, 9, 11],
        [true, true, 0.5f, 128, 12, 5, 5],
    ], _ => 0, "conv2d");

    [Theory]
    [MemberData(nameof(Epilogues))]
    public void Conv2d_epilogue_adds_channel_bias_and_residual_then_scales(string backendName, bool channelBias, bool residual, float scale,
        int cin, int cout, int h, int w)
    {
        using var backend = TestBackends.Create(backendName);
        var (actual, expected) = ConvWithEpilogue(backend, Conv2dSpec.Same3x3(cin, cout), 2, h, w, channelBias, residual, scale);
        ShouldMatch(actual, expected, Tolerance, "conv with epilogue");
    }

    // height, width at batch 8, each image one or two tile rows of half a vector of tiles, so a vector's two runs of tiles
    // lie in two images with different channel biases: F(2×2) at 2×4, 2×8, 2×16 (runs at 4, 8, 16 lanes), F(4×4) at
    // 4×8 and 4×16 (runs at 4 and 8 lanes).
    public static IEnumerable<object[]> ImageSpanningRuns => TestBackends.WithBackends(
    [
        [2, 4], [2, 8], [2, 16], [4, 8], [4, 16],
    ], _ => 0, "conv2d");

    [Theory]
    [MemberData(nameof(ImageSpanningRuns))]
    public void Winograd_runs_spanning_two_images_take_each_image_s_channel_bias(string backendName, int h, int w)
    {
        using var backend = TestBackends.Create(backendName);
        var (actual, expected) = ConvWithEpilogue(backend, Conv2dSpec.Same3x3(16, 20), 8, h, w, true, true, 0.5f);
        ShouldMatch(actual, expected, Tolerance, $"conv with epilogue at 8×16×{h}×{w}");
    }

    /// <summary>
    /// The half-precision version (tensor cores; inputs and weights rounded to half, 11 significant bits, products
    /// summed in float32): each rounding is within 2^−12 relative and random signs mostly cancel; the cases below
    /// measured 0.8e-4 to 1.7e-4 of the output's scale on the emulated device.
    /// </summary>
    private const double HalfTolerance = 1e-3;

    // As Shapes. Chosen for version 3's 64 × 64 × 32 tiling: one slice and one block; three slices over two blocks of
    // channels; 1×1 over two blocks of pixels; a 5×5 kernel (run-time K) over four slices; stride 2 with padding after;
    // 56 channels × 64 pixels, so all four warps' eight accumulators hold outputs.
    public static IEnumerable<object[]> HalfShapes => TestBackends.HalfPrecision("conv2d",
    [
        [1, 3, 5, 7, 9, 3, 1, 1, 1],
        [2, 9, 70, 2, 3, 3, 1, 1, 1],
        [2, 20, 12, 5, 7, 1, 1, 0, 0],
        [1, 5, 1, 6, 5, 5, 1, 2, 2],
        [2, 7, 9, 9, 6, 3, 2, 0, 1],
        [1, 8, 56, 8, 8, 3, 1, 1, 1],
    ]);

    [Theory]
    [MemberData(nameof(HalfShapes))]
    public void Conv2d_in_half_precision_matches_the_float64_reference(string backendName, int n, int cin, int cout, int h, int w, int kernel,
        int stride, int padBegin, int padEnd)
    {
        using var backend = TestBackends.Create(backendName);
        var spec = new Conv2dSpec(cin, cout, kernel, stride, padBegin, padEnd);
        var (actual, expected) = ConvWithEpilogue(backend, spec, n, h, w);
        ShouldMatch(actual, expected, HalfTolerance, $"half-precision {spec} on {n}×{cin}×{h}×{w} with epilogue");
    }

    [Theory]
    [MemberData(nameof(TestBackends.Names), MemberType = typeof(TestBackends))]
    public void Conv2d_rejects_mismatched_shapes_and_aliasing(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        var spec = Conv2dSpec.Same3x3(4, 6);
        using var weights = backend.PrepareConv2d(spec, Random(9, 6 * 4 * 9), Random(10, 6));
        using var x = backend.Upload(Random(11, 4 * 5 * 5), 1, 4, 5, 5);
        using var wrongChannels = backend.Allocate(1, 5, 5, 5);
        using var y = backend.Allocate(1, 6, 5, 5);

        backend.Invoking(b => b.Conv2d(x, weights, wrongChannels)).Should().Throw<BackendArgumentException>();
        backend.Invoking(b => b.Conv2d(x, weights, y, new Conv2dEpilogue(Residual: y))).Should().Throw<BackendArgumentException>();
        backend.Invoking(b => b.PrepareConv2d(spec, new float[10], new float[6])).Should().Throw<BackendArgumentException>();
    }
}
