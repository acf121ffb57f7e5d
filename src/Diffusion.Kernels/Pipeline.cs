using System.Diagnostics;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Kernels;

/// <summary>
/// What to generate and how, short of the model: everything <see cref="Pipeline.Validate"/> can check before a
/// model is loaded. <see cref="GenerateOptions"/> adds the model.
/// </summary>
public record SamplingSettings
{
    public SamplerKind Sampler { get; init; } = SamplerKind.Ddim;

    /// <summary>The model's scheduler_config.json (<see cref="SchedulerConfig.Load"/>); diffusers' defaults when null.</summary>
    public SchedulerConfig? SchedulerConfig { get; init; }

    /// <summary>Number of sampling steps; null takes <see cref="Scheduler.DefaultSteps"/>.</summary>
    public int? Steps { get; init; }

    /// <summary>DDIM's η in [0, 1]: 0 is deterministic, 1 is DDPM-like. Ignored by the other samplers.</summary>
    public double Eta { get; init; }

    /// <summary>Seeds every random number of the run, through <see cref="Rng"/>.</summary>
    public ulong Seed { get; init; }

    /// <summary>The stream the seed drives: torch's by default, so a seed gives the noise diffusers gives.</summary>
    public RngKind Rng { get; init; } = RngKind.Torch;

    /// <summary>Images to generate, 1..<see cref="Pipeline.MaxBatch"/>; ignored when <see cref="InitialNoise"/> is given.</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Overrides the model's sample height and width (e.g. for fully convolutional models).</summary>
    public int? Height { get; init; }

    public int? Width { get; init; }

    /// <summary>
    /// Unit-variance initial noise (B, C, H, W) to start from instead of the seeded one; it is scaled by the
    /// sampler's initial σ like the seeded noise. Its shape sets the batch size and image size.
    /// </summary>
    public HostTensor? InitialNoise { get; init; }

    /// <summary>
    /// The most images one model forward takes; null: <see cref="Pipeline.DefaultMaxChunkSize"/>. Memory may
    /// lower it further (<see cref="Pipeline.PlanBatch"/>). Chunking never changes which noise an image gets.
    /// </summary>
    public int? MaxChunkSize { get; init; }
}

/// <summary>What to generate, with the model to generate it with. Only <see cref="Model"/> is required.</summary>
public sealed record GenerateOptions : SamplingSettings
{
    /// <summary>The denoising network, on the backend sampling runs on.</summary>
    public required IDenoiser Model { get; init; }
}

/// <summary>
/// Reported after each chunk of each step: chunk <see cref="Chunk"/> of <see cref="ChunkCount"/> of step
/// <see cref="Step"/> of <see cref="TotalSteps"/> is done (both 1-based), <see cref="ImagesDone"/> of the
/// <see cref="Batch"/> images have been through that step. A run of one chunk reports once per step.
/// </summary>
public readonly record struct GenerationProgress(int Step, int TotalSteps, float Timestep, TimeSpan Elapsed,
    int Chunk = 1, int ChunkCount = 1, int ImagesDone = 0, int Batch = 0)
{
    /// <summary>Share of the whole run done, in (0, 1]: the steps before this one and this step's chunks.</summary>
    public double Fraction => ((Step - 1) * (double)ChunkCount + Chunk) / ((double)TotalSteps * ChunkCount);

    /// <summary>Every chunk of <see cref="Step"/> is done.</summary>
    public bool StepDone => Chunk == ChunkCount;

    /// <summary>The last report of the run.</summary>
    public bool IsLast => Step == TotalSteps && StepDone;
}

/// <summary>
/// How a batch runs: <see cref="ChunkCount"/> chunks of at most <see cref="ChunkSize"/> images per model forward,
/// with <see cref="NeededBytes"/> of the <see cref="AvailableBytes"/> the backend has free.
/// </summary>
public readonly record struct BatchPlan(int Batch, int ChunkSize, long NeededBytes, long AvailableBytes)
{
    public int ChunkCount => (Batch + ChunkSize - 1) / ChunkSize;
}

/// <summary>The sampler produced NaN or infinity, which no image can show.</summary>
public sealed class NonFiniteSampleException(string message) : DiffusionException(message);

/// <summary>
/// Noise to images: x_T from the seed, then per step one model forward and one fused <see cref="IBackend.SamplerStep"/>.
/// It owns the policy a caller would otherwise repeat: the limits on batch and image size, the memory estimate,
/// and running a large batch in chunks. Chunks move in lockstep: each step draws the whole batch's noise once,
/// then runs every chunk's forward and update, so the draws happen in the order diffusers makes them whatever the
/// chunk size.
/// <code>
///   var config = SchedulerConfig.Load("model/scheduler/scheduler_config.json");
///   var samples = Pipeline.Generate(new GenerateOptions { Model = unet, SchedulerConfig = config, Seed = 7, Batch = 4 });
///   Png.Save("grid.png", samples);
/// </code>
/// </summary>
public static class Pipeline
{
    public const int MaxBatch = 4096;

    public const int MaxImageSide = 8192;

    /// <summary>Images per model forward unless <see cref="SamplingSettings.MaxChunkSize"/> says otherwise: few
    /// enough that progress moves within a step of a large batch, enough to keep the kernels' work large.</summary>
    public const int DefaultMaxChunkSize = 64;

    /// <summary>
    /// Device copies of the sample each image keeps across steps (x, model output, x0, previous x0, scaled input)
    /// plus host copies (x_T, a step's noise, the output check, the result): what a batch costs beyond one chunk's
    /// activations.
    /// </summary>
    private const int PerImageSampleCopies = 9;

    /// <summary>Runs the sampler and returns the final samples (B, C, H, W), nominally in [−1, 1].</summary>
    public static HostTensor Generate(GenerateOptions options, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var scheduler = Validate(options);
        int[] shape = SampleShape(options);
        var plan = PlanBatch(options.Model, shape[0], shape[2], shape[3], options.MaxChunkSize);
        return Sample(options.Model, scheduler, NoiseSource.Create(options.Rng, options.Seed), shape, options.InitialNoise,
            plan.ChunkSize, progress, cancellationToken);
    }

    /// <summary>
    /// Checks every setting that needs no model — batch and image size, steps, η, the scheduler config's fit to
    /// the sampler, the initial noise's rank — and returns the scheduler the run would use. Throws
    /// <see cref="SamplingOptionsException"/> or <see cref="SchedulerConfigException"/> naming the setting.
    /// </summary>
    public static Scheduler Validate(SamplingSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.InitialNoise is { } given)
        {
            if (given.Rank != 4 || given.Shape.Any(d => d < 1))
                throw new SamplingOptionsException($"initial noise must have shape (B, C, H, W), got ({string.Join(", ", given.Shape)})");
            CheckBatchAndSize(given.Shape[0], given.Shape[2], given.Shape[3]);
        }
        else
        {
            CheckBatchAndSize(settings.Batch, settings.Height ?? 1, settings.Width ?? 1);
        }
        if (!(settings.Eta >= 0 && settings.Eta <= 1))
            throw new SamplingOptionsException($"eta must lie in [0, 1], got {settings.Eta}");
        if (settings.MaxChunkSize is < 1)
            throw new SamplingOptionsException($"the chunk size must be at least 1, got {settings.MaxChunkSize}");
        var config = settings.SchedulerConfig ?? SchedulerConfig.Default;
        int steps = settings.Steps ?? Scheduler.DefaultSteps(settings.Sampler, config);
        return Scheduler.Create(settings.Sampler, config, steps, settings.Eta);
    }

    /// <summary>
    /// Sizes the chunks of a batch to the backend's free memory: the whole batch's sample copies stay resident, and
    /// each chunk's forward needs <see cref="IDenoiser.ActivationBytes"/>. Throws
    /// <see cref="InsufficientMemoryForBatchException"/> before anything is allocated when not even one image at a
    /// time fits.
    /// </summary>
    public static BatchPlan PlanBatch(IDenoiser model, int batch, int height, int width, int? maxChunkSize = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        // Only the batch: a model's own sample size, however large, is for the memory estimate to judge.
        CheckBatchAndSize(batch, 1, 1);
        long sampleBytes = sizeof(float) * (long)model.SampleShape.Channels * height * width;
        long resident = PerImageSampleCopies * sampleBytes * batch;
        long perImage = Math.Max(1, model.ActivationBytes(1, height, width));
        long available = model.Backend.AvailableMemoryBytes;
        long fitting = (available - resident) / perImage;
        if (fitting < 1)
            throw new InsufficientMemoryForBatchException(batch, height, width, resident + perImage, available, model.Backend.Name);
        int chunk = (int)Math.Min(Math.Min(batch, maxChunkSize ?? DefaultMaxChunkSize), fitting);
        return new BatchPlan(batch, chunk, resident + model.ActivationBytes(chunk, height, width), available);
    }

    /// <summary>The sampling loop for an explicit scheduler; <see cref="Generate"/> is the usual entry point.</summary>
    public static HostTensor Sample(IDenoiser model, Scheduler scheduler, NoiseSource noise, int[] shape, HostTensor? initialNoise = null,
        int? chunkSize = null, IProgress<GenerationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(noise);
        var backend = model.Backend;
        int batch = shape[0];
        int imageSize = checked((int)HostTensor.Count(shape) / batch);
        int count = checked(batch * imageSize);
        float[] start = InitialSample(initialNoise ?? new HostTensor(shape, noise.Initial(count)), scheduler.InitNoiseSigma);
        int size = Math.Clamp(chunkSize ?? batch, 1, batch);
        var clock = Stopwatch.StartNew();

        var chunks = new List<Chunk>();
        try
        {
            for (int first = 0; first < batch; first += size)
                chunks.Add(new Chunk(backend, start, first, Math.Min(size, batch - first), shape));
            var modelOutputCopy = new float[size * imageSize];
            for (int i = 0; i < scheduler.StepCount; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var plan = scheduler.Step(i);
                // diffusers draws a step's noise after the model call and the mean, but neither consumes random
                // numbers, so drawing it first for the whole batch keeps torch's sequence at any chunk size.
                float[]? z = plan.NeedsNoise ? noise.Step(i, count) : null;
                int done = 0;
                for (int c = 0; c < chunks.Count; c++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var chunk = chunks[c];
                    chunk.Step(model, plan, z, modelOutputCopy, i, scheduler.StepCount);
                    done += chunk.Count;
                    if (progress is not null)
                    {
                        backend.Synchronize();
                        progress.Report(new GenerationProgress(i + 1, scheduler.StepCount, plan.Timestep, clock.Elapsed,
                            c + 1, chunks.Count, done, batch));
                    }
                }
            }

            var result = new HostTensor(shape);
            foreach (var chunk in chunks) backend.Download(chunk.X, result.Data.AsSpan(chunk.First * imageSize, chunk.Count * imageSize));
            int bad = Array.FindIndex(result.Data, v => !float.IsFinite(v));
            if (bad >= 0)
                throw new NonFiniteSampleException($"the sampler produced a non-finite value ({result.Data[bad]}) at element {bad}; " +
                    "the model or its scheduler config does not fit this sampler");
            return result;
        }
        finally
        {
            foreach (var chunk in chunks) chunk.Dispose();
        }
    }

    /// <summary>Images [First, First + Count) of the batch: their sample, model output and x0 history on the device.</summary>
    private sealed class Chunk : IDisposable
    {
        private readonly IBackend _backend;
        private readonly int[] _shape;
        private readonly DeviceTensor _output;
        private DeviceTensor _x0, _previousX0;
        private DeviceTensor? _scaledInput;

        public Chunk(IBackend backend, float[] start, int first, int count, int[] batchShape)
        {
            _backend = backend;
            First = first;
            Count = count;
            _shape = [count, batchShape[1], batchShape[2], batchShape[3]];
            int imageSize = batchShape[1] * batchShape[2] * batchShape[3];
            X = backend.Upload(start.AsSpan(first * imageSize, count * imageSize), _shape);
            _output = backend.Allocate(_shape);
            _x0 = backend.Allocate(_shape);
            _previousX0 = backend.Allocate(_shape);
        }

        public int First { get; }

        public int Count { get; }

        public DeviceTensor X { get; }

        /// <summary>One model forward and one sampler update of this chunk; <paramref name="noise"/> is the whole batch's.</summary>
        public void Step(IDenoiser model, in SamplerStepPlan plan, float[]? noise, float[] outputCopy, int step, int steps)
        {
            var input = X;
            if (plan.InputScale != 1f)
            {
                // (x + x)·(s/2) rounds exactly like x·s: doubling and halving are exact in binary floating point.
                _scaledInput ??= _backend.Allocate(_shape);
                _backend.Add(X, X, _scaledInput, plan.InputScale / 2);
                input = _scaledInput;
            }
            model.Forward(input, [plan.Timestep], _output);
            EnsureFinite(_backend, _output, outputCopy.AsSpan(0, (int)X.Length), First, step, steps, plan.Timestep);

            using var z = noise is null ? null : _backend.Upload(noise.AsSpan(First * (int)(X.Length / Count), (int)X.Length), _shape);
            _backend.SamplerStep(X, _output, z, plan.UsesPreviousX0 ? _previousX0 : null, _x0, plan.Coefficients, X);
            (_x0, _previousX0) = (_previousX0, _x0);
        }

        public void Dispose()
        {
            X.Dispose();
            _output.Dispose();
            _x0.Dispose();
            _previousX0.Dispose();
            _scaledInput?.Dispose();
        }
    }

    /// <summary>
    /// Stops at the first step whose model output holds NaN or infinity, naming the step: a diverging model is
    /// easier to diagnose where it starts than from a black image at the end. One download per step is cheap next
    /// to a U-Net forward.
    /// </summary>
    private static void EnsureFinite(IBackend backend, DeviceTensor output, Span<float> copy, int firstImage, int step, int steps, float timestep)
    {
        backend.Download(output, copy);
        int bad = 0;
        while (bad < copy.Length && float.IsFinite(copy[bad])) bad++;
        if (bad < copy.Length)
            throw new NonFiniteSampleException($"the model output became non-finite ({copy[bad]} at element " +
                $"{bad + firstImage * (output.Length / output.N)}) at step {step + 1} of {steps} (timestep {timestep}); " +
                "the weights or the input are broken, or the model does not fit this sampler");
    }

    private static void CheckBatchAndSize(int batch, int height, int width)
    {
        if (batch < 1 || batch > MaxBatch)
            throw new SamplingOptionsException($"batch must lie in 1..{MaxBatch}, got {batch}");
        if (height < 1 || width < 1 || height > MaxImageSide || width > MaxImageSide)
            throw new SamplingOptionsException($"image size {height}×{width} is outside 1..{MaxImageSide}");
    }

    private static int[] SampleShape(GenerateOptions options)
    {
        var (channels, height, width) = options.Model.SampleShape;
        if (options.InitialNoise is { } given)
        {
            if (given.Shape[1] != channels)
                throw new SamplingOptionsException(
                    $"initial noise must have shape (B, {channels}, H, W) for this model, got ({string.Join(", ", given.Shape)})");
            return given.Shape;
        }
        return [options.Batch, channels, options.Height ?? height, options.Width ?? width];
    }

    /// <summary>x_T = float32(g · σ_init), each value rounded once (as the reference computes it).</summary>
    private static float[] InitialSample(HostTensor unitNoise, double initSigma)
    {
        var start = new float[unitNoise.Data.Length];
        for (int i = 0; i < start.Length; i++) start[i] = (float)(unitNoise.Data[i] * initSigma);
        return start;
    }
}
