using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Cuda;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Kernels;
using Diffusion.Kernels.Tests.Models;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// What only the CUDA backend has: every kernel version of each op (see <see cref="KernelVersions"/>), on shapes
/// chosen for that version's tiles, against the float64 <see cref="Reference"/>; the memory pool; typed errors for
/// tensors from elsewhere. The ops themselves, at the default versions, are checked on every backend by the tests in
/// Kernels/. These need a GPU and skip with the reason on machines without one. Tolerances are on
/// <see cref="KernelCheck.NormalisedError"/> (max error over max |reference|): float32 accumulation over a few
/// thousand terms stays near 1e-6, so 1e-5 fails on any indexing mistake yet passes honest rounding.
/// </summary>
public sealed class CudaBackendTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<int, int, int, int, int, int, int, int, int> ConvCases() => new()
    {
        // version, cin, cout, k, stride, padBegin, padEnd, size, batch
        { 2, 3, 32, 3, 1, 1, 1, 16, 2 },     // conv_in: few input channels, reduction depth 27
        { 2, 64, 70, 3, 1, 1, 1, 9, 1 },     // channels and pixels not multiples of the 64-wide tiles
        { 2, 32, 32, 3, 2, 0, 1, 16, 2 },    // diffusers downsample, downsample_padding = 0
        { 2, 32, 32, 3, 2, 1, 1, 15, 1 },    // downsample with symmetric padding, odd size
        { 2, 96, 48, 1, 1, 0, 0, 8, 3 },     // 1×1 shortcut
        { 2, 8, 16, 5, 1, 2, 2, 7, 1 },      // any other kernel size (conv2d_v2_kn)
        { 1, 64, 70, 3, 1, 1, 1, 9, 1 },
        { 1, 32, 32, 3, 2, 0, 1, 16, 2 },
        { 1, 96, 48, 1, 1, 0, 0, 8, 3 },
    };

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void Conv2d_matches_reference(int version, int cin, int cout, int k, int stride, int padBegin, int padEnd, int size, int batch)
    {
        var (plain, fused) = CudaConvCheck.Errors(CudaGpu.Require(Versions(version)), new Conv2dSpec(cin, cout, k, stride, padBegin, padEnd), size, batch);
        plain.Should().BeLessThan(Tolerance);
        fused.Should().BeLessThan(Tolerance);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(1, true)]
    public void GroupNorm_matches_reference_in_place(int version, bool silu)
    {
        var b = CudaGpu.Require(Versions(version));
        const int n = 2, c = 64, h = 12, w = 10, groups = 32;
        // An offset mean checks the two-pass variance: E[x²] − mean² would lose digits here.
        float[] x = Random(7 + version, n * c * h * w, 19f, 21f), gamma = Random(8, c), beta = Random(9, c);

        using var tx = b.Upload(x, n, c, h, w);
        using var tg = b.Upload(gamma, c);
        using var tb = b.Upload(beta, c);
        b.GroupNorm(tx, tg, tb, groups, 1e-6f, silu, tx);

        NormalisedError(Download(b, tx), Reference.GroupNorm(x, n, c, h * w, gamma, beta, groups, 1e-6f, silu)).Should().BeLessThan(Tolerance);
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(2, false)]
    public void Linear_matches_reference(int version, bool siluInput)
    {
        var b = CudaGpu.Require(Versions(version));
        const int rows = 3, inF = 130, outF = 520;
        float[] x = Random(11, rows * inF, -3f, 3f), w = Random(12, outF * inF, -0.1f, 0.1f), bias = Random(13, outF);

        using var weights = b.PrepareLinear(inF, outF, w, bias);
        using var tx = b.Upload(x, rows, inF);
        using var ty = b.Allocate(rows, outF);
        b.Linear(tx, weights, ty, siluInput);

        NormalisedError(Download(b, ty), Reference.Linear(x, rows, inF, outF, w, bias, siluInput)).Should().BeLessThan(Tolerance);
    }

    public static TheoryData<int, int, int, int, int> AttentionCases() => new()
    {
        // version, batch, channels, heads, side
        { 2, 2, 64, 1, 8 },      // one head, d = 64, 64 tokens
        { 2, 1, 128, 4, 5 },     // 25 tokens: a partial key tile and a partial query tile
        { 2, 1, 40, 1, 16 },     // d = 40: a partial head-dimension chunk
        { 2, 64, 32, 1, 4 },     // many images, 16 tokens
        { 2, 1, 256, 1, 16 },    // the CIFAR U-Net's 16×16 attention, d = 256
        { 1, 2, 64, 1, 8 },
        { 1, 1, 128, 4, 5 },
    };

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void Attention_matches_reference(int version, int batch, int channels, int heads, int side)
    {
        var b = CudaGpu.Require(Versions(version));
        int tokens = side * side;
        float[] qkv = Random(batch * 100 + channels + heads + side, batch * 3 * channels * tokens, -2f, 2f);

        using var tq = b.Upload(qkv, batch, 3 * channels, side, side);
        using var ty = b.Allocate(batch, channels, side, side);
        b.Attention(tq, ty, heads);

        NormalisedError(Download(b, ty), Reference.Attention(qkv, batch, channels, tokens, heads)).Should().BeLessThan(Tolerance);
    }

    [Fact]
    public void Repeated_work_reuses_device_memory_and_frees_everything()
    {
        var b = CudaGpu.Require();
        b.Synchronize();
        int blocksBefore = b.BlocksInUse;
        var spec = Conv2dSpec.Same3x3(32, 32);
        using (var weights = b.PrepareConv2d(spec, Random(9, 32 * 32 * 9), Random(10, 32)))
        {
            int allocationsAfterFirst = 0;
            for (int step = 0; step < 5; step++)
            {
                using var x = b.Upload(Random(11 + step, 2 * 32 * 16 * 16), 2, 32, 16, 16);
                using var h = b.Allocate(2, 32, 16, 16);
                using var y = b.Allocate(2, 32, 16, 16);
                b.Conv2d(x, weights, h);
                b.SiLU(h, h);
                b.Conv2d(h, weights, y, new Conv2dEpilogue(Residual: x));
                b.Synchronize();
                if (step == 0) allocationsAfterFirst = b.DriverAllocations;
            }
            b.DriverAllocations.Should().Be(allocationsAfterFirst, "later steps reuse the first step's blocks");
        }
        b.BlocksInUse.Should().Be(blocksBefore, "every tensor and weight returned its memory");
    }

    /// <summary>A whole sampling run (U-Net, sampler steps, noise uploads) leaves nothing allocated behind.</summary>
    [Fact]
    public void A_whole_generation_gives_back_every_device_block()
    {
        var b = CudaGpu.Require();
        var golden = Golden.Load("unet_tiny");
        b.Synchronize();
        int blocksBefore = b.BlocksInUse;
        using (var net = UNet2D.Create(golden.Config, golden.Weights, b))
        {
            var samples = Pipeline.Generate(new GenerateOptions
            {
                Model = net,
                SchedulerConfig = SchedulerConfig.Default,
                Sampler = SamplerKind.EulerAncestral,
                Steps = 4,
                Seed = 3,
                Batch = 2,
            }, progress: null, TestContext.Current.CancellationToken);
            samples.Data.Should().OnlyContain(v => float.IsFinite(v));
        }
        b.BlocksInUse.Should().Be(blocksBefore, "the model's weights and every sampling buffer returned their memory");
    }

    [Fact]
    public void Foreign_and_misshaped_tensors_get_typed_errors()
    {
        var b = CudaGpu.Require();
        using var x = b.Allocate(1, 4, 4, 4);
        using var wrong = b.Allocate(1, 4, 4, 5);
        FluentActions.Invoking(() => b.SiLU(x, wrong)).Should().Throw<DiffusionException>().WithMessage("*shape*");
        FluentActions.Invoking(() => b.Attention(x, wrong, 1)).Should().Throw<DiffusionException>();

        using var cpu = new CpuBackend();
        using var foreign = cpu.Upload(Random(14, 4 * 4 * 4), 1, 4, 4, 4);
        using var foreignWeights = cpu.PrepareConv2d(Conv2dSpec.Same3x3(4, 4), Random(15, 4 * 4 * 9), Random(16, 4));
        using var y = b.Allocate(1, 4, 4, 4);
        FluentActions.Invoking(() => b.SiLU(foreign, y)).Should().Throw<DiffusionException>().WithMessage("*cpu tensor*only use tensors it allocated*");
        FluentActions.Invoking(() => b.Conv2d(x, foreignWeights, y)).Should().Throw<DiffusionException>().WithMessage("*prepared by another backend*");
    }

    private static KernelVersions Versions(int version) => version == 1 ? CudaGpu.Simple : CudaGpu.Default;
}
