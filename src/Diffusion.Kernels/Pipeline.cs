using System.Diagnostics;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Kernels;

/// <summary>What to generate and how. Only <see cref="Model"/> is required.</summary>
public sealed record GenerateOptions
{
    /// <summary>The denoising network, on the backend sampling runs on.</summary>
    public required IDenoiser Model { get; init; }

    public SamplerKind Sampler { get; init; } = SamplerKind.Ddim;

    /// <summary>The model's scheduler_config.json (<see cref="SchedulerConfig.Load"/>); diffusers' defaults when null.</summary>
    public SchedulerConfig? SchedulerConfig { get; init; }

    /// <summary>Number of sampling steps; null takes <see cref="Scheduler.DefaultSteps"/>.</summary>
    public int? Steps { get; init; }

    /// <summary>DDIM's η: 0 is deterministic, 1 is DDPM-like. Ignored by the other samplers.</summary>
    public double Eta { get; init; }

    /// <summary>Seeds every random number of the run (see <see cref="NoiseSource"/> for the streams).</summary>
    public ulong Seed { get; init; }

    public int Batch { get; init; } = 1;

    /// <summary>Overrides the model's sample height and width (e.g. for fully convolutional models).</summary>
    public int? Height { get; init; }

    public int? Width { get; init; }

    /// <summary>
    /// Unit-variance initial noise (B, C, H, W) to start from instead of the seeded one; it is scaled by the
    /// sampler's initial σ like the seeded noise. Its shape sets the batch size and image size.
    /// </summary>
    public HostTensor? InitialNoise { get; init; }
}

/// <summary>Reported after each step: <see cref="Step"/> of <see cref="TotalSteps"/> is done.</summary>
public readonly record struct GenerationProgress(int Step, int TotalSteps, float Timestep, TimeSpan Elapsed);

/// <summary>The sampler produced NaN or infinity, which no image can show.</summary>
public sealed class NonFiniteSampleException(string message) : DiffusionException(message);

/// <summary>
/// Noise to images: x_T from the seed, then per step one model forward and one fused <see cref="IBackend.SamplerStep"/>.
/// <code>
///   var config = SchedulerConfig.Load("model/scheduler/scheduler_config.json");
///   var samples = Pipeline.Generate(new GenerateOptions { Model = unet, SchedulerConfig = config, Seed = 7, Batch = 4 });
///   Png.Save("grid.png", samples);
/// </code>
/// </summary>
public static class Pipeline
{
    /// <summary>Runs the sampler and returns the final samples (B, C, H, W), nominally in [−1, 1].</summary>
    public static HostTensor Generate(GenerateOptions options, IProgress<GenerationProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var config = options.SchedulerConfig ?? SchedulerConfig.Default;
        int steps = options.Steps ?? Scheduler.DefaultSteps(options.Sampler, config);
        var scheduler = Scheduler.Create(options.Sampler, config, steps, options.Eta);
        int[] shape = SampleShape(options);
        return Sample(options.Model, scheduler, new NoiseSource(options.Seed), shape, options.InitialNoise, progress, cancellationToken);
    }

    /// <summary>The sampling loop for an explicit scheduler; <see cref="Generate"/> is the usual entry point.</summary>
    public static HostTensor Sample(IDenoiser model, Scheduler scheduler, NoiseSource noise, int[] shape, HostTensor? initialNoise = null,
        IProgress<GenerationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var backend = model.Backend;
        int count = checked((int)HostTensor.Count(shape));
        float[] start = InitialSample(initialNoise ?? new HostTensor(shape, noise.Initial(count)), scheduler.InitNoiseSigma);
        var clock = Stopwatch.StartNew();

        using var x = backend.Upload(start, shape);
        using var output = backend.Allocate(shape);
        using var x0 = backend.Allocate(shape);
        using var previousX0 = backend.Allocate(shape);
        DeviceTensor? scaledInput = null;
        var modelOutputCopy = new float[count];
        DeviceTensor currentX0 = x0, lastX0 = previousX0;
        try
        {
            for (int i = 0; i < scheduler.StepCount; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var plan = scheduler.Step(i);
                var input = x;
                if (plan.InputScale != 1f)
                {
                    // (x + x)·(s/2) rounds exactly like x·s: doubling and halving are exact in binary floating point.
                    scaledInput ??= backend.Allocate(shape);
                    backend.Add(x, x, scaledInput, plan.InputScale / 2);
                    input = scaledInput;
                }
                model.Forward(input, [plan.Timestep], output);
                EnsureFinite(backend, output, modelOutputCopy, i, scheduler.StepCount, plan.Timestep);

                using var z = plan.NeedsNoise ? backend.Upload(noise.Step(i, count), shape) : null;
                backend.SamplerStep(x, output, z, plan.UsesPreviousX0 ? lastX0 : null, currentX0, plan.Coefficients, x);
                (currentX0, lastX0) = (lastX0, currentX0);

                if (progress is not null)
                {
                    backend.Synchronize();
                    progress.Report(new GenerationProgress(i + 1, scheduler.StepCount, plan.Timestep, clock.Elapsed));
                }
            }
        }
        finally
        {
            scaledInput?.Dispose();
        }

        var result = new HostTensor(shape);
        backend.Download(x, result.Data);
        int bad = Array.FindIndex(result.Data, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new NonFiniteSampleException($"the sampler produced a non-finite value ({result.Data[bad]}) at element {bad}; " +
                "the model or its scheduler config does not fit this sampler");
        return result;
    }

    /// <summary>
    /// Stops at the first step whose model output holds NaN or infinity, naming the step: a diverging model is
    /// easier to diagnose where it starts than from a black image at the end. One download per step is cheap next
    /// to a U-Net forward.
    /// </summary>
    private static void EnsureFinite(IBackend backend, DeviceTensor output, float[] copy, int step, int steps, float timestep)
    {
        backend.Download(output, copy);
        int bad = Array.FindIndex(copy, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new NonFiniteSampleException($"the model output became non-finite ({copy[bad]} at element {bad}) at step {step + 1} " +
                $"of {steps} (timestep {timestep}); the weights or the input are broken, or the model does not fit this sampler");
    }

    private static int[] SampleShape(GenerateOptions options)
    {
        var (channels, height, width) = options.Model.SampleShape;
        if (options.InitialNoise is { } given)
        {
            if (given.Rank != 4 || given.Shape[1] != channels || given.Shape[0] < 1 || given.Shape[2] < 1 || given.Shape[3] < 1)
                throw new SamplingOptionsException(
                    $"initial noise must have shape (B, {channels}, H, W) for this model, got ({string.Join(", ", given.Shape)})");
            return given.Shape;
        }
        if (options.Batch < 1 || options.Batch > 4096)
            throw new SamplingOptionsException($"batch must lie in 1..4096, got {options.Batch}");
        height = options.Height ?? height;
        width = options.Width ?? width;
        if (height < 1 || width < 1 || height > 8192 || width > 8192)
            throw new SamplingOptionsException($"image size {height}×{width} is outside 1..8192");
        return [options.Batch, channels, height, width];
    }

    /// <summary>x_T = float32(g · σ_init), each value rounded once (as the reference computes it).</summary>
    private static float[] InitialSample(HostTensor unitNoise, double initSigma)
    {
        var start = new float[unitNoise.Data.Length];
        for (int i = 0; i < start.Length; i++) start[i] = (float)(unitNoise.Data[i] * initSigma);
        return start;
    }
}
