using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Tests.Support;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Kernels;

/// <summary>
/// Every op shape of the CIFAR-10 U-Net (<see cref="OpCases.Cifar10UNet"/>, the list <c>diffuse bench</c> times) at
/// batch 1 against the float64 reference, at its stated tolerance, on every backend (the emulated device takes the
/// shapes within its budget, each version row only for the ops that have that version in float32; the half versions
/// have their own tests at their own tolerance). The edge-case shapes are in each op's own tests.
/// </summary>
public class UNetShapeTests
{
    public static IEnumerable<object[]> Cases => TestBackends.WithBackends(
        OpCases.Cifar10UNet.Select(s => new object[] { s.Name }), row => Find((string)row[0]).Outputs(1), row => Find((string)row[0]).Op);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_unet_op_shape_matches_the_float64_reference(string backendName, string name)
    {
        using var backend = TestBackends.Create(backendName);
        var shape = Find(name);
        var (got, expected) = shape switch
        {
            Conv2dShape c => Conv(backend, c),
            AttentionShape a => Attention(backend, a),
            GroupNormShape g => GroupNorm(backend, g),
            LinearShape l => Linear(backend, l),
            SamplerStepShape s => SamplerStep(backend, s),
            _ => throw new ArgumentException(name),
        };
        ShouldMatch(got, expected, shape.Tolerance, name);
    }

    private static OpShape Find(string name) => OpCases.Cifar10UNet.Single(s => s.Name == name);

    private static (float[], double[]) Conv(IBackend b, Conv2dShape c)
    {
        var spec = c.Spec;
        int k = spec.Kernel, o = spec.OutputSize(c.Size);
        float[] x = Random(60, spec.InChannels * c.Size * c.Size);
        float[] w = Random(61, spec.OutChannels * spec.InChannels * k * k, -0.1f, 0.1f);
        float[] bias = Random(62, spec.OutChannels);
        using var weights = b.PrepareConv2d(spec, w, bias);
        using var xt = b.Upload(x, 1, spec.InChannels, c.Size, c.Size);
        using var yt = b.Allocate(1, spec.OutChannels, o, o);
        b.Conv2d(xt, weights, yt);
        return (Download(b, yt), Reference.Conv2d(x, 1, spec.InChannels, c.Size, c.Size, w, bias, spec.OutChannels, k, spec.Stride, spec.PadBegin, spec.PadEnd));
    }

    private static (float[], double[]) Attention(IBackend b, AttentionShape a)
    {
        float[] qkv = Random(63, 3 * a.Channels * a.Size * a.Size, -2f, 2f);
        using var qt = b.Upload(qkv, 1, 3 * a.Channels, a.Size, a.Size);
        using var yt = b.Allocate(1, a.Channels, a.Size, a.Size);
        b.Attention(qt, yt, a.Heads);
        return (Download(b, yt), Reference.Attention(qkv, 1, a.Channels, a.Size * a.Size, a.Heads));
    }

    private static (float[], double[]) GroupNorm(IBackend b, GroupNormShape g)
    {
        float[] x = Random(64, g.Channels * g.Size * g.Size, 2f, 4f);
        float[] gamma = Random(65, g.Channels, 0.5f, 1.5f), beta = Random(66, g.Channels);
        using var xt = b.Upload(x, 1, g.Channels, g.Size, g.Size);
        using var gt = b.Upload(gamma, g.Channels);
        using var bt = b.Upload(beta, g.Channels);
        using var yt = b.Allocate(1, g.Channels, g.Size, g.Size);
        b.GroupNorm(xt, gt, bt, g.Groups, g.Eps, g.Silu, yt);
        return (Download(b, yt), Reference.GroupNorm(x, 1, g.Channels, g.Size * g.Size, gamma, beta, g.Groups, g.Eps, g.Silu));
    }

    private static (float[], double[]) Linear(IBackend b, LinearShape l)
    {
        float[] x = Random(67, l.InFeatures, -3f, 3f);
        float[] w = Random(68, l.OutFeatures * l.InFeatures, -0.2f, 0.2f), bias = Random(69, l.OutFeatures);
        using var weights = b.PrepareLinear(l.InFeatures, l.OutFeatures, w, bias);
        using var xt = b.Upload(x, 1, l.InFeatures);
        using var yt = b.Allocate(1, l.OutFeatures);
        b.Linear(xt, weights, yt, l.SiluInput);
        return (Download(b, yt), Reference.Linear(x, 1, l.InFeatures, l.OutFeatures, w, bias, l.SiluInput));
    }

    /// <summary>DDPM-like coefficients with every term in play; the reference is the formula in float64.</summary>
    private static (float[], double[]) SamplerStep(IBackend b, SamplerStepShape s)
    {
        int count = s.Channels * s.Size * s.Size;
        int[] shape = [1, s.Channels, s.Size, s.Size];
        float[] x = Random(70, count, -3f, 3f), m = Random(71, count), z = Random(72, count), prev = Random(73, count);
        var k = new SamplerStepCoefficients(1.02f, -0.2f, 1f, 0.1f, 0.98f, 0.7f, 0.3f, 0.05f, -0.1f, 0.02f);
        using var xt = b.Upload(x, shape);
        using var mt = b.Upload(m, shape);
        using var zt = b.Upload(z, shape);
        using var pt = b.Upload(prev, shape);
        using var x0 = b.Allocate(shape);
        using var next = b.Allocate(shape);
        b.SamplerStep(xt, mt, zt, pt, x0, k, next);
        var expected = new double[2 * count];
        for (int i = 0; i < count; i++)
        {
            double x0v = Math.Clamp((double)k.X0FromSample * x[i] + (double)k.X0FromModel * m[i], -k.ClipRange, k.ClipRange);
            double eps = (double)k.EpsFromSample * x[i] + (double)k.EpsFromModel * m[i];
            expected[i] = x0v;
            expected[count + i] = k.NextFromX0 * x0v + k.NextFromEps * eps + (double)k.NextFromSample * x[i]
                + (double)k.NextFromPrevX0 * prev[i] + (double)k.NextFromNoise * z[i];
        }
        return ([.. Download(b, x0), .. Download(b, next)], expected);
    }
}
