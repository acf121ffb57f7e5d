using System.Text.Json;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Models;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// Whole pipelines from the seed alone with the default <c>--rng torch</c>, against weights/goldens/torch_pipeline_*
/// (weights/make_goldens.py): torch's generator drew x_T and every step's noise in diffusers' order, through the
/// reference schedulers with the tiny golden U-Net or the toy model. The noise is bit-exact, so what is left is
/// float32 arithmetic, which the runs add up: 3e-4 absolute. A wrong draw or draw order moves samples by O(1).
/// Measured on the CPU tiers: DDPM and noisy DDIM within 2e-5; DDIM η = 0 (no noise to wash differences out over 10
/// steps) at 1.6e-4, where F(2×2) Winograd alone gave 6.6e-5; the emulated device's direct sums, in another order, 1.1e-4.
/// </summary>
public class TorchPipelineGoldenTests
{
    private const double Tolerance = 3e-4;

    /// <summary>
    /// Every case on the CPU tiers and CUDA. The emulated device is left out: what this test checks (the noise stream
    /// and draw order) does not depend on the backend, and the emulated device's sampling is held to the CPU backend
    /// instead (GpuBackendTests, over a DDIM run).
    /// </summary>
    public static IEnumerable<object[]> CasesOnBackends() => TestBackends.WithBackends(Index().Select(c => new object[] { c.Name }))
        .Where(row => !((string)row[0]).StartsWith("emulated", StringComparison.Ordinal));

    [Theory]
    [MemberData(nameof(CasesOnBackends))]
    public void Generate_from_the_seed_reproduces_the_torch_driven_trajectory(string backendName, string name)
    {
        var entry = Index().Single(c => c.Name == name);
        var golden = new GoldenFile(Path.Combine(RepositoryPaths.Goldens, entry.File));
        using var backend = TestBackends.Create(backendName);
        using var unet = entry.Model == "tiny" ? TinyUNet(backend) : null;
        IDenoiser model = unet ?? (IDenoiser)new ToyDenoiser(backend, entry.Shape[0], entry.Shape[1], entry.Shape[2]);
        var options = new GenerateOptions
        {
            Model = model,
            Sampler = entry.Sampler,
            SchedulerConfig = SchedulerConfig.Parse(entry.Config, entry.File),
            Steps = entry.Steps,
            Eta = entry.Eta,
            Seed = entry.Seed,
            Batch = entry.Batch,
            Height = entry.Shape[1],
            Width = entry.Shape[2],
        };
        var ct = TestContext.Current.CancellationToken;

        var recording = new FirstStepRecorder(model);
        var result = Pipeline.Generate(options with { Model = recording }, cancellationToken: ct);
        if (entry.Sampler != SamplerKind.EulerAncestral) // Euler's model input is scaled; its final sample still checks the step
            AssertClose(recording.SecondInput!, golden.Values("x_first_step"), "x after the first step");
        AssertClose(result.Data, golden.Values("x_final"), "final sample");

        if (entry.Batch > 1)
        {
            // One image per forward: lockstep chunks keep torch's draw order, so the images do not move.
            var chunked = Pipeline.Generate(options with { MaxChunkSize = 1 }, cancellationToken: ct);
            AssertClose(chunked.Data, golden.Values("x_final"), "final sample, one image per chunk");
        }
    }

    [Fact]
    public void The_cases_cover_ddpm_and_ddim_with_and_without_eta_at_batch_1_and_2()
    {
        var cases = Index();
        foreach (var (sampler, noisy) in new[] { (SamplerKind.Ddpm, true), (SamplerKind.Ddim, false), (SamplerKind.Ddim, true) })
        {
            var matching = cases.Where(c => c.Sampler == sampler && c.Model == "tiny" && (sampler == SamplerKind.Ddpm || c.Eta > 0 == noisy)).ToList();
            matching.Select(c => c.Batch).Should().Contain(b => b > 1, $"{sampler} noisy={noisy} at batch > 1");
        }
        cases.Should().Contain(c => c.Sampler == SamplerKind.Ddpm && c.Batch == 1 && c.Model == "tiny");
        cases.Should().Contain(c => c.Sampler == SamplerKind.Ddim && c.Eta > 0 && c.Batch == 1 && c.Model == "tiny");
        cases.Select(c => c.Sampler).Distinct().Should().BeEquivalentTo(Enum.GetValues<SamplerKind>());
    }

    private static UNet2D TinyUNet(Backends.IBackend backend)
    {
        var golden = Golden.Load("unet_tiny");
        return UNet2D.Create(golden.Config, golden.Weights, backend);
    }

    private static void AssertClose(float[] actual, double[] expected, string what)
    {
        actual.Should().HaveCount(expected.Length);
        int worst = -1;
        double worstError = Tolerance;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= worstError)) (worst, worstError) = (i, double.IsNaN(error) ? double.PositiveInfinity : error);
        }
        worst.Should().Be(-1, $"{what}: element {worst} is {(worst < 0 ? 0 : actual[worst])}, expected {(worst < 0 ? 0 : expected[worst])}");
    }

    /// <summary>Keeps a host copy of the second forward's input: the sample after the first step.</summary>
    private sealed class FirstStepRecorder(IDenoiser inner) : IDenoiser
    {
        private int _calls;

        public float[]? SecondInput { get; private set; }

        public Backends.IBackend Backend => inner.Backend;

        public (int Channels, int Height, int Width) SampleShape => inner.SampleShape;

        public long ActivationBytes(int batch, int height, int width) => inner.ActivationBytes(batch, height, width);

        public void Forward(Backends.DeviceTensor sample, ReadOnlySpan<float> timesteps, Backends.DeviceTensor output)
        {
            if (++_calls == 2)
            {
                SecondInput = new float[sample.Length];
                Backend.Download(sample, SecondInput);
            }
            inner.Forward(sample, timesteps, output);
        }
    }

    private sealed record Case(string Name, SamplerKind Sampler, string Config, int Steps, double Eta, ulong Seed, int Batch,
        string Model, int[] Shape, string File);

    private static List<Case> Index()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Goldens, "torch_pipeline_cases.json")));
        return json.RootElement.EnumerateObject().Select(c => new Case(
            c.Name,
            c.Value.GetProperty("scheduler_class").GetString() switch
            {
                "DDPMScheduler" => SamplerKind.Ddpm,
                "DDIMScheduler" => SamplerKind.Ddim,
                "DPMSolverMultistepScheduler" => SamplerKind.DpmSolverPlusPlus2M,
                "EulerAncestralDiscreteScheduler" => SamplerKind.EulerAncestral,
                var other => throw new InvalidOperationException(other),
            },
            c.Value.GetProperty("scheduler_config").GetRawText(),
            c.Value.GetProperty("num_inference_steps").GetInt32(),
            c.Value.GetProperty("eta").GetDouble(),
            c.Value.GetProperty("seed").GetUInt64(),
            c.Value.GetProperty("batch").GetInt32(),
            c.Value.GetProperty("model").GetString()!,
            c.Value.GetProperty("sample_shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(),
            c.Value.GetProperty("file").GetString()!)).ToList();
    }
}
