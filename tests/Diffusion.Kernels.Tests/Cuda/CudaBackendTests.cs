using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cuda;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Cuda.Float64Reference;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// Every CUDA op, every kernel version, against the float64 reference on fresh random inputs. These need a GPU and
/// skip with the reason on machines without one. Tolerances are on ‖error‖₂/‖reference‖₂: float32 accumulation over
/// a few thousand terms stays near 1e-6, so 1e-5 fails on any indexing mistake yet passes honest rounding.
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
        var b = CudaGpu.Require(Versions(version));
        var rng = new Random(cin * 1000 + cout * 10 + k + stride);
        var spec = new Conv2dSpec(cin, cout, k, stride, padBegin, padEnd);
        int o = spec.OutputSize(size);
        float[] x = Random(rng, batch * cin * size * size), w = Random(rng, cout * cin * k * k, 0.2f), bias = Random(rng, cout);
        float[] channelBias = Random(rng, batch * cout), residual = Random(rng, batch * cout * o * o);

        using var weights = b.PrepareConv2d(spec, w, bias);
        using var tx = b.Upload(x, batch, cin, size, size);
        using var tcb = b.Upload(channelBias, batch, cout);
        using var tres = b.Upload(residual, batch, cout, o, o);
        using var plain = b.Allocate(batch, cout, o, o);
        using var fused = b.Allocate(batch, cout, o, o);
        b.Conv2d(tx, weights, plain);
        b.Conv2d(tx, weights, fused, new Conv2dEpilogue(tcb, tres, 0.5f));

        NormalisedError(Download(b, plain), Conv2d(x, batch, cin, size, size, w, bias, cout, k, stride, padBegin, padEnd, null, null, 1f))
            .Should().BeLessThan(Tolerance);
        NormalisedError(Download(b, fused), Conv2d(x, batch, cin, size, size, w, bias, cout, k, stride, padBegin, padEnd, channelBias, residual, 0.5f))
            .Should().BeLessThan(Tolerance);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(1, true)]
    public void GroupNorm_matches_reference_in_place(int version, bool silu)
    {
        var b = CudaGpu.Require(Versions(version));
        var rng = new Random(7 + version);
        const int n = 2, c = 64, h = 12, w = 10, groups = 32;
        // An offset mean checks the two-pass variance: E[x²] − mean² would lose digits here.
        float[] x = Random(rng, n * c * h * w).Select(v => v + 20f).ToArray(), gamma = Random(rng, c), beta = Random(rng, c);

        using var tx = b.Upload(x, n, c, h, w);
        using var tg = b.Upload(gamma, c);
        using var tb = b.Upload(beta, c);
        b.GroupNorm(tx, tg, tb, groups, 1e-6f, silu, tx);

        NormalisedError(Download(b, tx), GroupNorm(x, n, c, h * w, gamma, beta, groups, 1e-6f, silu)).Should().BeLessThan(Tolerance);
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(2, false)]
    public void Linear_matches_reference(int version, bool siluInput)
    {
        var b = CudaGpu.Require(Versions(version));
        var rng = new Random(11);
        const int rows = 3, inF = 130, outF = 520;
        float[] x = Random(rng, rows * inF, 3f), w = Random(rng, outF * inF, 0.1f), bias = Random(rng, outF);

        using var weights = b.PrepareLinear(inF, outF, w, bias);
        using var tx = b.Upload(x, rows, inF);
        using var ty = b.Allocate(rows, outF);
        b.Linear(tx, weights, ty, siluInput);

        NormalisedError(Download(b, ty), Linear(x, rows, inF, w, bias, outF, siluInput)).Should().BeLessThan(Tolerance);
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
        var rng = new Random(batch * 100 + channels + heads + side);
        int tokens = side * side;
        float[] qkv = Random(rng, batch * 3 * channels * tokens, 2f);

        using var tq = b.Upload(qkv, batch, 3 * channels, side, side);
        using var ty = b.Allocate(batch, channels, side, side);
        b.Attention(tq, ty, heads);

        NormalisedError(Download(b, ty), Attention(qkv, batch, channels, tokens, heads)).Should().BeLessThan(Tolerance);
    }

    [Fact]
    public void Elementwise_ops_match_reference()
    {
        var b = CudaGpu.Require();
        var rng = new Random(3);
        float[] a = Random(rng, 2 * 3 * 5 * 7, 6f), c = Random(rng, 2 * 4 * 5 * 7);
        using var ta = b.Upload(a, 2, 3, 5, 7);
        using var tc = b.Upload(c, 2, 4, 5, 7);

        using var silu = b.Allocate(2, 3, 5, 7);
        b.SiLU(ta, silu);
        NormalisedError(Download(b, silu), a.Select(v => Silu(v)).ToArray()).Should().BeLessThan(1e-6);

        using var sum = b.Upload(a, 2, 3, 5, 7);
        b.Add(sum, ta, sum, 0.25f); // y aliases a
        Download(b, sum).Should().Equal(a.Select(v => (v + v) * 0.25f));

        using var up = b.Allocate(2, 3, 10, 14);
        b.Upsample2x(ta, up);
        Download(b, up).Should().Equal(Enumerable.Range(0, 2 * 3 * 10 * 14).Select(i =>
        {
            int x = i % 14, y = i / 14 % 10, plane = i / 140;
            return a[(plane * 5 + y / 2) * 7 + x / 2];
        }));

        using var joined = b.Allocate(2, 7, 5, 7);
        b.Concat(ta, tc, joined);
        Download(b, joined).Should().Equal(a.Take(105).Concat(c.Take(140)).Concat(a.Skip(105)).Concat(c.Skip(140)));
    }

    [Theory]
    [InlineData(true, 1f, 32)]
    [InlineData(false, 0f, 33)]
    public void TimestepEmbedding_matches_reference(bool flip, float shift, int dim)
    {
        var b = CudaGpu.Require();
        float[] t = [0f, 1f, 999f, 517.5f];
        using var ty = b.Allocate(t.Length, dim);
        b.TimestepEmbedding(t, flip, shift, ty);

        int half = dim / 2;
        var expected = new double[t.Length * dim];
        for (int n = 0; n < t.Length; n++)
            for (int k = 0; k < half; k++)
            {
                // diffusers' float32 steps, then sin/cos in float64
                float freq = MathF.Exp((float)-Math.Log(10000) * k / (half - shift));
                double arg = t[n] * freq;
                expected[n * dim + k] = flip ? Math.Cos(arg) : Math.Sin(arg);
                expected[n * dim + half + k] = flip ? Math.Sin(arg) : Math.Cos(arg);
            }
        var actual = Download(b, ty);
        actual.Zip(expected).Should().OnlyContain(p => Math.Abs(p.First - p.Second) < 2e-6);
    }

    [Fact]
    public void SamplerStep_matches_float32_arithmetic_exactly()
    {
        var b = CudaGpu.Require();
        var rng = new Random(5);
        const int count = 3 * 8 * 8;
        float[] x = Random(rng, count, 3f), m = Random(rng, count), z = Random(rng, count), prev = Random(rng, count);
        var k = new SamplerStepCoefficients(1.3f, -0.7f, 1f, 0.2f, 0.9f, 0.6f, 0.3f, 0.1f, -0.4f, 0.05f);

        using var tx = b.Upload(x, 1, 3, 8, 8);
        using var tm = b.Upload(m, 1, 3, 8, 8);
        using var tz = b.Upload(z, 1, 3, 8, 8);
        using var tp = b.Upload(prev, 1, 3, 8, 8);
        using var x0 = b.Allocate(1, 3, 8, 8);
        b.SamplerStep(tx, tm, tz, tp, x0, k, tx); // next aliases sample

        var expectedX0 = new float[count];
        var expectedNext = new float[count];
        for (int i = 0; i < count; i++)
        {
            float a0 = Math.Clamp(k.X0FromSample * x[i] + k.X0FromModel * m[i], -k.ClipRange, k.ClipRange);
            float eps = k.EpsFromSample * x[i] + k.EpsFromModel * m[i];
            expectedX0[i] = a0;
            expectedNext[i] = k.NextFromX0 * a0 + k.NextFromEps * eps + k.NextFromSample * x[i] + k.NextFromPrevX0 * prev[i] + k.NextFromNoise * z[i];
        }
        Download(b, x0).Should().Equal(expectedX0);
        Download(b, tx).Should().Equal(expectedNext);
    }

    [Fact]
    public void Repeated_work_reuses_device_memory_and_frees_everything()
    {
        var b = CudaGpu.Require();
        b.Synchronize();
        int blocksBefore = b.BlocksInUse;
        var rng = new Random(9);
        var spec = Conv2dSpec.Same3x3(32, 32);
        using (var weights = b.PrepareConv2d(spec, Random(rng, 32 * 32 * 9), Random(rng, 32)))
        {
            int allocationsAfterFirst = 0;
            for (int step = 0; step < 5; step++)
            {
                using var x = b.Upload(Random(rng, 2 * 32 * 16 * 16), 2, 32, 16, 16);
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

    [Fact]
    public void Foreign_and_misshaped_tensors_get_typed_errors()
    {
        var b = CudaGpu.Require();
        using var x = b.Allocate(1, 4, 4, 4);
        using var wrong = b.Allocate(1, 4, 4, 5);
        FluentActions.Invoking(() => b.SiLU(x, wrong)).Should().Throw<DiffusionException>().WithMessage("*shape*");
        FluentActions.Invoking(() => b.Attention(x, wrong, 1)).Should().Throw<DiffusionException>();
    }

    private static KernelVersions Versions(int version) => version == 1 ? CudaGpu.Simple : CudaGpu.Default;

    private static float[] Download(IBackend b, DeviceTensor t)
    {
        var data = new float[t.Length];
        b.Download(t, data);
        return data;
    }
}
