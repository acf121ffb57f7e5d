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
    public void With_splitmix_the_first_image_of_a_batch_is_the_single_image_of_the_same_seed()
    {
        var ct = TestContext.Current.CancellationToken;
        var single = Pipeline.Generate(Options(Toy()) with { Rng = RngKind.SplitMix }, cancellationToken: ct);
        var batch = Pipeline.Generate(Options(Toy()) with { Rng = RngKind.SplitMix, Batch = 3 }, cancellationToken: ct);
        batch.Data.AsSpan(0, single.Data.Length).ToArray().Should().Equal(single.Data);
    }

    [Fact]
    public void Given_initial_noise_replaces_the_seeded_noise_and_is_scaled_by_the_initial_sigma()
    {
        var ct = TestContext.Current.CancellationToken;
        var seeded = new SplitMixNoise(99).Initial(2 * 3 * 4 * 5);
        var options = Options(Toy()) with { Steps = 5 };
        var fromTensor = Pipeline.Generate(options with { Seed = 99, Rng = RngKind.SplitMix, InitialNoise = new HostTensor([2, 3, 4, 5], seeded) }, cancellationToken: ct);
        var fromSeed = Pipeline.Generate(options with { Seed = 99, Rng = RngKind.SplitMix, Batch = 2 }, cancellationToken: ct);
        fromTensor.Shape.Should().Equal(2, 3, 4, 5);
        fromTensor.Data.Should().Equal(fromSeed.Data, "Euler ancestral scales both by the same initial σ");
        var otherNoise = Pipeline.Generate(options with { Seed = 99, Rng = RngKind.SplitMix, InitialNoise = new HostTensor([2, 3, 4, 5], seeded.Reverse().ToArray()) }, cancellationToken: ct);
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

    [Theory]
    [InlineData(SamplerKind.Ddpm, RngKind.Torch)]
    [InlineData(SamplerKind.EulerAncestral, RngKind.Torch)]
    [InlineData(SamplerKind.EulerAncestral, RngKind.SplitMix)]
    public void Chunks_run_in_lockstep_and_give_the_samples_of_one_chunk(SamplerKind sampler, RngKind rng)
    {
        var ct = TestContext.Current.CancellationToken;
        var options = Options(Toy()) with { Sampler = sampler, Rng = rng, Steps = 4, Batch = 5 };
        var whole = Pipeline.Generate(options, cancellationToken: ct);

        var model = Toy();
        var reports = new List<GenerationProgress>();
        var chunked = Pipeline.Generate(options with { Model = model, MaxChunkSize = 2 }, new SynchronousProgress(reports.Add), ct);

        chunked.Data.Should().Equal(whole.Data, "every step draws the whole batch's noise once, before its chunks");
        model.SeenBatches.Should().Equal(2, 2, 1, 2, 2, 1, 2, 2, 1, 2, 2, 1);
        reports.Select(r => (r.Step, r.Chunk, r.ImagesDone)).Take(4).Should().Equal((1, 1, 2), (1, 2, 4), (1, 3, 5), (2, 1, 2));
        reports.Should().OnlyContain(r => r.ChunkCount == 3 && r.Batch == 5);
        reports.Select(r => r.Fraction).Should().BeInAscendingOrder().And.EndWith(1.0);
        reports.Count(r => r.IsLast).Should().Be(1);
        reports[^1].IsLast.Should().BeTrue();
    }

    [Fact]
    public void Torch_noise_draws_the_whole_batch_at_once_so_image_b_is_the_bth_slice()
    {
        var ct = TestContext.Current.CancellationToken;
        // DPM-Solver++ draws nothing after x_T, so the output is a function of x_T alone: randn(2·60) sliced.
        var options = Options(Toy()) with { Sampler = SamplerKind.DpmSolverPlusPlus2M, Steps = 3, Batch = 2 };
        var batch = Pipeline.Generate(options, cancellationToken: ct);
        var xT = new TorchCpuGenerator(1234).Randn(2 * 60);
        var second = Pipeline.Generate(options with { Batch = 1, InitialNoise = new HostTensor([1, 3, 4, 5], xT[60..]) }, cancellationToken: ct);
        batch.Data[60..].Should().Equal(second.Data);
    }

    [Theory]
    [InlineData(0, null, 0.0, "batch must lie in 1..4096, got 0")]
    [InlineData(4097, null, 0.0, "batch must lie in 1..4096, got 4097")]
    [InlineData(1, 0, 0.0, "steps must lie in 1..1000*got 0")]
    [InlineData(1, null, 1.5, "eta must lie in [0, 1], got 1.5")]
    [InlineData(1, null, double.NaN, "eta must lie in [0, 1], got NaN")]
    public void Validate_refuses_bad_settings_without_a_model(int batch, int? steps, double eta, string message)
    {
        var act = () => Pipeline.Validate(new SamplingSettings { Batch = batch, Steps = steps, Eta = eta });
        act.Should().Throw<SamplingOptionsException>().WithMessage(message);
    }

    [Fact]
    public void Validate_returns_the_scheduler_the_run_will_use()
    {
        var scheduler = Pipeline.Validate(new SamplingSettings { Sampler = SamplerKind.DpmSolverPlusPlus2M, Steps = 7 });
        scheduler.Should().BeOfType<DpmSolverMultistepScheduler>().Which.StepCount.Should().Be(7);
    }

    [Fact]
    public void Chunks_are_sized_to_free_memory_and_a_batch_that_cannot_fit_is_refused()
    {
        using var backend = new CpuBackend();
        long available = ((Backends.IBackend)backend).AvailableMemoryBytes;
        var hungry = new HungryDenoiser(backend, perImageBytes: (long)(available / 3.5));
        var plan = Pipeline.PlanBatch(hungry, 10, 4, 4);
        plan.ChunkSize.Should().Be(3);
        plan.ChunkCount.Should().Be(4);
        Pipeline.PlanBatch(hungry, 10, 4, 4, maxChunkSize: 2).ChunkSize.Should().Be(2);
        Pipeline.PlanBatch(Toy(), 300, 4, 5).ChunkSize.Should().Be(Pipeline.DefaultMaxChunkSize);

        var act = () => Pipeline.PlanBatch(new HungryDenoiser(backend, perImageBytes: 2 * available), 1, 4, 4);
        act.Should().Throw<global::Diffusion.Kernels.Models.InsufficientMemoryForBatchException>()
            .WithMessage("batch 1 at 4×4 needs about * MiB of memory, but the cpu backend has * MiB free*")
            .Which.Message.Should().NotContain("--");
    }

    /// <summary>A toy model that claims a large working set per image.</summary>
    private sealed class HungryDenoiser(Backends.IBackend backend, long perImageBytes) : IDenoiser
    {
        private readonly ToyDenoiser _toy = new(backend, 1, 4, 4);

        public Backends.IBackend Backend => backend;

        public (int Channels, int Height, int Width) SampleShape => _toy.SampleShape;

        public void Forward(Backends.DeviceTensor sample, ReadOnlySpan<float> timesteps, Backends.DeviceTensor output) =>
            _toy.Forward(sample, timesteps, output);

        public long ActivationBytes(int batch, int height, int width) => perImageBytes * batch;
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

        public long ActivationBytes(int batch, int height, int width) => 16L * batch;

        public void Forward(Backends.DeviceTensor sample, ReadOnlySpan<float> timesteps, Backends.DeviceTensor output)
        {
            float first = ++_calls >= explodeAtCall ? float.PositiveInfinity : 0f;
            using var values = Backend.Upload([first, 0, 0, 0], 1, 1, 2, 2);
            Backend.Add(values, values, output, 0.5f);
        }
    }
}
