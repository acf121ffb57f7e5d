using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Sampling;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

public class PipelineTests
{
    private static GenerateOptions Options(IDenoiser model) => new()
    {
        Model = model,
        Sampler = SamplerKind.EulerAncestral,
        Steps = 6,
        Seed = 1234,
    };

    private static ToyDenoiser Toy() => new(new CpuBackend(), 3, 4, 5);

    [Fact]
    public void Same_seed_gives_the_same_samples_and_another_seed_does_not()
    {
        var ct = TestContext.Current.CancellationToken;
        var a = Pipeline.Generate(Options(Toy()) with { Batch = 2 }, cancellationToken: ct);
        var b = Pipeline.Generate(Options(Toy()) with { Batch = 2 }, cancellationToken: ct);
        var c = Pipeline.Generate(Options(Toy()) with { Batch = 2, Seed = 1235 }, cancellationToken: ct);

        a.Shape.Should().Equal(2, 3, 4, 5);
        a.Data.Should().Equal(b.Data);
        a.Data.Zip(c.Data).Count(p => p.First != p.Second).Should().BeGreaterThan(a.Data.Length / 2);
    }

    [Fact]
    public void The_first_image_of_a_batch_is_the_single_image_of_the_same_seed()
    {
        var ct = TestContext.Current.CancellationToken;
        var single = Pipeline.Generate(Options(Toy()), cancellationToken: ct);
        var batch = Pipeline.Generate(Options(Toy()) with { Batch = 3 }, cancellationToken: ct);
        batch.Data.AsSpan(0, single.Data.Length).ToArray().Should().Equal(single.Data);
    }

    [Fact]
    public void Given_initial_noise_replaces_the_seeded_noise_and_is_scaled_by_the_initial_sigma()
    {
        var ct = TestContext.Current.CancellationToken;
        var seeded = new NoiseSource(99).Initial(2 * 3 * 4 * 5);
        var options = Options(Toy()) with { Steps = 5 };
        var fromTensor = Pipeline.Generate(options with { Seed = 99, InitialNoise = new HostTensor([2, 3, 4, 5], seeded) }, cancellationToken: ct);
        var fromSeed = Pipeline.Generate(options with { Seed = 99, Batch = 2 }, cancellationToken: ct);
        fromTensor.Shape.Should().Equal(2, 3, 4, 5);
        fromTensor.Data.Should().Equal(fromSeed.Data, "Euler ancestral scales both by the same initial σ");
        var otherNoise = Pipeline.Generate(options with { Seed = 99, InitialNoise = new HostTensor([2, 3, 4, 5], seeded.Reverse().ToArray()) }, cancellationToken: ct);
        otherNoise.Data.Should().NotEqual(fromSeed.Data);
    }

    [Fact]
    public void Initial_noise_with_the_wrong_channel_count_is_refused()
    {
        var act = () => Pipeline.Generate(Options(Toy()) with { InitialNoise = new HostTensor(1, 2, 4, 5) },
            cancellationToken: TestContext.Current.CancellationToken);
        act.Should().Throw<SamplingOptionsException>().WithMessage("*(B, 3, H, W)*(1, 2, 4, 5)*");
    }

    [Fact]
    public void Reports_progress_after_every_step_and_the_model_sees_each_timestep_once()
    {
        var model = Toy();
        var reports = new List<GenerationProgress>();
        var progress = new SynchronousProgress(reports.Add);
        Pipeline.Generate(Options(model) with { Sampler = SamplerKind.DpmSolverPlusPlus2M, Steps = 4 }, progress,
            TestContext.Current.CancellationToken);

        reports.Select(r => r.Step).Should().Equal(1, 2, 3, 4);
        reports.Should().OnlyContain(r => r.TotalSteps == 4);
        reports.Select(r => r.Timestep).Should().Equal(model.SeenTimesteps);
        model.SeenTimesteps.Should().Equal(999, 749, 500, 250);
    }

    [Fact]
    public void Cancellation_stops_between_steps()
    {
        using var cts = new CancellationTokenSource();
        var model = new ToyDenoiser(new CpuBackend(), 3, 4, 5);
        var progress = new SynchronousProgress(p => { if (p.Step == 2) cts.Cancel(); });
        var act = () => Pipeline.Generate(Options(model) with { Steps = 10 }, progress, cts.Token);
        act.Should().Throw<OperationCanceledException>();
        model.SeenTimesteps.Should().HaveCount(2);
    }

    [Fact]
    public void Default_steps_follow_the_sampler()
    {
        var config = SchedulerConfig.Default;
        Scheduler.DefaultSteps(SamplerKind.Ddpm, config).Should().Be(1000);
        Scheduler.DefaultSteps(SamplerKind.Ddim, config).Should().Be(50);
        Scheduler.DefaultSteps(SamplerKind.DpmSolverPlusPlus2M, config).Should().Be(20);
        Scheduler.DefaultSteps(SamplerKind.EulerAncestral, config).Should().Be(30);
    }

    [Fact]
    public void A_model_that_explodes_is_reported_with_the_step_where_it_started()
    {
        var act = () => Pipeline.Generate(Options(new ExplodingDenoiser(new CpuBackend(), explodeAtCall: 3)) with { Steps = 10 },
            cancellationToken: TestContext.Current.CancellationToken);
        act.Should().Throw<NonFiniteSampleException>().WithMessage("*at step 3 of 10*");
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests need the report before the next step.</summary>
    private sealed class SynchronousProgress(Action<GenerationProgress> report) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => report(value);
    }

    /// <summary>Predicts zeros, except that its output holds +∞ from the given call on.</summary>
    private sealed class ExplodingDenoiser(Backends.IBackend backend, int explodeAtCall) : IDenoiser
    {
        private int _calls;

        public Backends.IBackend Backend { get; } = backend;

        public (int Channels, int Height, int Width) SampleShape => (1, 2, 2);

        public void Forward(Backends.DeviceTensor sample, ReadOnlySpan<float> timesteps, Backends.DeviceTensor output)
        {
            float first = ++_calls >= explodeAtCall ? float.PositiveInfinity : 0f;
            using var values = Backend.Upload([first, 0, 0, 0], 1, 1, 2, 2);
            Backend.Add(values, values, output, 0.5f);
        }
    }
}
