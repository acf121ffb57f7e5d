using System.Text.Json;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// Sampler trajectories against weights/goldens/sampler_*.safetensors (weights/make_goldens.py: diffusers'
/// formulas in numpy float64, the toy model of <see cref="ToyDenoiser"/>, noise from SyntheticWeights streams).
/// </summary>
public class SamplerGoldenTests
{
    /// <summary>Golden README: trajectories within 1e-4 absolute + 1e-4 relative (float32 coefficients and arithmetic).</summary>
    private const double Absolute = 1e-4, Relative = 1e-4;

    public static TheoryData<string> Cases() => new(Index().Select(c => c.Name));

    /// <summary>The sampler step is a kernel on each backend: every golden case on every backend.</summary>
    public static IEnumerable<object[]> CasesOnBackends() => TestBackends.WithBackends(Index().Select(c => new object[] { c.Name }));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Timesteps_and_sigmas_match(string name)
    {
        var (scheduler, golden, _) = Load(name);
        scheduler.Timesteps.Select(t => (double)t).Should().Equal(golden.Values("timesteps"), "timesteps are exact");
        if (!golden.Contains("sigmas")) return;
        IReadOnlyList<double> sigmas = scheduler switch
        {
            DpmSolverMultistepScheduler dpm => dpm.Sigmas,
            EulerAncestralScheduler euler => euler.Sigmas,
            _ => throw new InvalidOperationException(),
        };
        var expected = golden.Values("sigmas");
        sigmas.Should().HaveCount(expected.Length);
        for (int i = 0; i < expected.Length; i++)
            Math.Abs(sigmas[i] - expected[i]).Should().BeLessThanOrEqualTo(1e-12 * expected[i], $"sigma {i}");
    }

    /// <summary>One step at a time from the golden state, so an error points at the step that makes it.</summary>
    [Theory]
    [MemberData(nameof(CasesOnBackends))]
    public void Every_step_maps_the_golden_state_to_the_next(string backendName, string name)
    {
        var (scheduler, golden, _) = Load(name);
        using var backend = TestBackends.Create(backendName);
        int[] shape = golden.Shape("x_init");
        int steps = scheduler.StepCount;
        var used = golden.Values("noise_used");
        for (int i = 0; i < steps; i++)
        {
            var plan = scheduler.Step(i);
            bool agrees = plan.NeedsNoise ? used[i] != 0 : used[i] == 0 || plan.Coefficients.NextFromNoise == 0;
            agrees.Should().BeTrue($"step {i} adds noise when the reference does (needs {plan.NeedsNoise}, used {used[i]})");
            var modelInput = golden.Slice("x", i).Select(v => v * plan.InputScale).ToArray();
            AssertClose(modelInput, golden.Slice("model_input", i), $"model input of step {i}", 1e-6, 1e-6);

            using var x = backend.Upload(golden.Slice("x", i), shape);
            using var m = backend.Upload(golden.Slice("model_output", i), shape);
            using var z = plan.NeedsNoise ? backend.Upload(golden.Slice("noise", i), shape) : null;
            using var prev = plan.UsesPreviousX0 ? backend.Upload(golden.Slice("x0_pred", i - 1), shape) : null;
            using var x0 = backend.Allocate(shape);
            using var next = backend.Allocate(shape);
            backend.SamplerStep(x, m, z, prev, x0, plan.Coefficients, next);

            AssertClose(Read(backend, x0), golden.Slice("x0_pred", i), $"x0 of step {i}", Absolute, Relative);
            AssertClose(Read(backend, next), golden.Slice("x", i + 1), $"x after step {i}", Absolute, Relative);
        }
    }

    /// <summary>
    /// The whole loop from the seed alone: initial noise, step noise and model calls all have to line up, and every
    /// intermediate x (the model's input) stays on the golden trajectory. DDIM with η = 0 is held to 1e-4 absolute
    /// with no relative slack, the bar the samplers were specified to.
    /// </summary>
    [Theory]
    [MemberData(nameof(CasesOnBackends))]
    public void Pipeline_from_the_seed_follows_the_golden_trajectory(string backendName, string name)
    {
        var (scheduler, golden, seed) = Load(name);
        int[] shape = golden.Shape("x_init");
        using var backend = TestBackends.Create(backendName);
        var toy = new ToyDenoiser(backend, shape[1], shape[2], shape[3]);
        var model = new RecordingDenoiser(toy);
        var entry = Index().Single(c => c.Name == name);
        var (absolute, relative) = KindOf(entry.Config) == SamplerKind.Ddim && entry.Eta == 0 ? (1e-4, 0.0) : (Absolute, Relative);

        var result = Pipeline.Sample(model, scheduler, new SplitMixNoise(seed), shape, cancellationToken: TestContext.Current.CancellationToken);

        toy.SeenTimesteps.Select(t => (double)t).Should().Equal(golden.Values("timesteps"));
        for (int i = 0; i < scheduler.StepCount; i++)
            AssertClose(model.Inputs[i], golden.Slice("model_input", i), $"model input of step {i}", absolute, relative);
        AssertClose(result.Data, golden.Slice("x", scheduler.StepCount), "final sample", absolute, relative);
    }

    [Fact]
    public void Every_sampler_kind_is_covered_by_a_golden()
    {
        var kinds = Index().Select(c => KindOf(c.Config)).Distinct();
        kinds.Should().BeEquivalentTo(Enum.GetValues<SamplerKind>());
    }

    private static float[] Read(Backends.IBackend backend, Backends.DeviceTensor tensor)
    {
        var values = new float[tensor.Length];
        backend.Download(tensor, values);
        return values;
    }

    private static void AssertClose(float[] actual, float[] expected, string what, double absolute, double relative)
    {
        actual.Should().HaveCount(expected.Length);
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double excess = Math.Abs(actual[i] - expected[i]) - (absolute + relative * Math.Abs(expected[i]));
            if (!(excess <= worst) && (worstAt < 0 || excess > worst)) (worst, worstAt) = (excess, i);
        }
        worstAt.Should().Be(-1, $"{what}: element {worstAt} is {(worstAt < 0 ? 0 : actual[worstAt])}, expected {(worstAt < 0 ? 0 : expected[worstAt])}");
    }

    /// <summary>Passes every call through, keeping a host copy of each input sample.</summary>
    private sealed class RecordingDenoiser(IDenoiser inner) : IDenoiser
    {
        public List<float[]> Inputs { get; } = [];

        public Backends.IBackend Backend => inner.Backend;

        public (int Channels, int Height, int Width) SampleShape => inner.SampleShape;

        public long ActivationBytes(int batch, int height, int width) => inner.ActivationBytes(batch, height, width);

        public void Forward(Backends.DeviceTensor sample, ReadOnlySpan<float> timesteps, Backends.DeviceTensor output)
        {
            Inputs.Add(Read(Backend, sample));
            inner.Forward(sample, timesteps, output);
        }
    }

    private sealed record Case(string Name, string Config, int Steps, double Eta, ulong Seed, string File);

    private static List<Case> Index()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.Goldens, "sampler_cases.json")));
        return json.RootElement.EnumerateObject().Select(c => new Case(
            c.Name,
            c.Value.GetProperty("scheduler_config").GetRawText(),
            c.Value.GetProperty("num_inference_steps").GetInt32(),
            c.Value.TryGetProperty("eta", out var eta) ? eta.GetDouble() : 0,
            c.Value.GetProperty("seed").GetUInt64(),
            c.Value.GetProperty("file").GetString()!)).ToList();
    }

    private static SamplerKind KindOf(string configJson)
    {
        using var json = JsonDocument.Parse(configJson);
        return json.RootElement.GetProperty("_class_name").GetString() switch
        {
            "DDPMScheduler" => SamplerKind.Ddpm,
            "DDIMScheduler" => SamplerKind.Ddim,
            "DPMSolverMultistepScheduler" => SamplerKind.DpmSolverPlusPlus2M,
            "EulerAncestralDiscreteScheduler" => SamplerKind.EulerAncestral,
            var other => throw new InvalidOperationException(other),
        };
    }

    private static (Scheduler Scheduler, GoldenFile Golden, ulong Seed) Load(string name)
    {
        var entry = Index().Single(c => c.Name == name);
        var golden = new GoldenFile(Path.Combine(RepositoryPaths.Goldens, entry.File));
        var config = SchedulerConfig.Parse(entry.Config, entry.File);
        if (golden.Contains("trained_betas")) config = config with { TrainedBetas = golden.Values("trained_betas") };
        return (Scheduler.Create(KindOf(entry.Config), config, entry.Steps, entry.Eta), golden, entry.Seed);
    }
}
