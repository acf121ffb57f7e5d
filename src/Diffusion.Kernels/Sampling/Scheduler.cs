using Diffusion.Kernels.Backends;

namespace Diffusion.Kernels.Sampling;

/// <summary>The samplers we implement, named as on the command line.</summary>
public enum SamplerKind
{
    /// <summary>"ddpm": ancestral sampling of Ho et al. 2020 (diffusers DDPMScheduler).</summary>
    Ddpm,

    /// <summary>"ddim": Song et al. 2021, deterministic at η = 0 (diffusers DDIMScheduler).</summary>
    Ddim,

    /// <summary>"dpm++2m": second-order multistep DPM-Solver++ of Lu et al. 2022 (diffusers DPMSolverMultistepScheduler).</summary>
    DpmSolverPlusPlus2M,

    /// <summary>"euler-a": Euler ancestral of Karras et al. 2022 / k-diffusion (diffusers EulerAncestralDiscreteScheduler).</summary>
    EulerAncestral,
}

/// <summary>Invalid sampling options (step count, η, noise shape), naming the option.</summary>
public sealed class SamplingOptionsException(string message) : DiffusionException(message);

/// <summary>
/// Everything the sampling loop needs for step i, computed on the host in float64 and rounded once:
/// call the model on <c>x·InputScale</c> at <see cref="Timestep"/>, then apply <see cref="Coefficients"/> with
/// fresh noise when <see cref="NeedsNoise"/> and the previous step's x0 when <see cref="UsesPreviousX0"/>.
/// </summary>
public readonly record struct SamplerStepPlan(
    float Timestep,
    float InputScale,
    SamplerStepCoefficients Coefficients,
    bool NeedsNoise,
    bool UsesPreviousX0);

/// <summary>
/// A sampler reduced to per-step scalars. Each subclass reads like its diffusers counterpart's <c>step</c>, but
/// instead of updating tensors it returns the coefficients of the fused <see cref="IBackend.SamplerStep"/>
/// update, so one kernel serves every sampler on every backend. Plans depend only on the step index (multistep
/// history is the x0 the loop keeps), so a scheduler is immutable and can be shared.
/// </summary>
public abstract class Scheduler
{
    protected Scheduler(SchedulerConfig config, int steps)
    {
        if (steps < 1 || steps > config.NumTrainTimesteps)
            throw new SamplingOptionsException($"steps must lie in 1..{config.NumTrainTimesteps} (num_train_timesteps), got {steps}");
        Config = config;
        Schedule = new NoiseSchedule(config);
    }

    public SchedulerConfig Config { get; }

    public NoiseSchedule Schedule { get; }

    /// <summary>The timestep the model sees at each step, in sampling order (descending).</summary>
    public abstract IReadOnlyList<float> Timesteps { get; }

    public int StepCount => Timesteps.Count;

    /// <summary>Standard deviation of the initial noise x_T (1 except for σ-parameterised samplers).</summary>
    public virtual double InitNoiseSigma => 1.0;

    public abstract SamplerStepPlan Step(int index);

    /// <summary>Builds a sampler the way diffusers' <c>XScheduler.from_config(config)</c> then <c>set_timesteps(steps)</c> would.</summary>
    public static Scheduler Create(SamplerKind kind, SchedulerConfig config, int steps, double eta = 0) => kind switch
    {
        SamplerKind.Ddpm => new DdpmScheduler(config, steps),
        SamplerKind.Ddim => new DdimScheduler(config, steps, eta),
        SamplerKind.DpmSolverPlusPlus2M => new DpmSolverMultistepScheduler(config, steps),
        SamplerKind.EulerAncestral => new EulerAncestralScheduler(config, steps),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The step count each sampler needs for good images from a DDPM-trained model.</summary>
    public static int DefaultSteps(SamplerKind kind, SchedulerConfig config) => kind switch
    {
        SamplerKind.Ddpm => config.NumTrainTimesteps,
        SamplerKind.Ddim => 50,
        SamplerKind.DpmSolverPlusPlus2M => 20,
        SamplerKind.EulerAncestral => 30,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Parses the command-line name: ddpm, ddim, dpm++2m, euler-a.</summary>
    public static bool TryParseKind(string text, out SamplerKind kind)
    {
        kind = text.ToLowerInvariant() switch
        {
            "ddpm" => SamplerKind.Ddpm,
            "ddim" => SamplerKind.Ddim,
            "dpm++2m" or "dpmpp2m" => SamplerKind.DpmSolverPlusPlus2M,
            "euler-a" or "euler_a" => SamplerKind.EulerAncestral,
            _ => (SamplerKind)(-1),
        };
        return Enum.IsDefined(kind);
    }

    public static string NameOf(SamplerKind kind) => kind switch
    {
        SamplerKind.Ddpm => "ddpm",
        SamplerKind.Ddim => "ddim",
        SamplerKind.DpmSolverPlusPlus2M => "dpm++2m",
        SamplerKind.EulerAncestral => "euler-a",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>
    /// DDPM/DDIM <c>set_timesteps</c>: n integer timesteps, descending.
    /// leading: i·(T // n) + steps_offset; trailing: round(T − i·T/n) − 1; linspace: round(linspace(0, T−1, n)).
    /// </summary>
    protected static int[] DiscreteTimesteps(int trainSteps, int steps, TimestepSpacing spacing, int stepsOffset)
    {
        var timesteps = new int[steps];
        for (int i = 0; i < steps; i++)
        {
            timesteps[i] = spacing switch
            {
                TimestepSpacing.Leading => (steps - 1 - i) * (trainSteps / steps) + stepsOffset,
                // numpy's arange(T, 0, −T/n) sometimes yields n + 1 values (ending in −1) from rounding; we take n.
                TimestepSpacing.Trailing => (int)Numpy.Round(trainSteps + i * -((double)trainSteps / steps)) - 1,
                _ => 0,
            };
        }
        if (spacing == TimestepSpacing.Linspace)
        {
            double[] points = Numpy.Linspace(0, trainSteps - 1, steps);
            for (int i = 0; i < steps; i++) timesteps[i] = (int)Numpy.Round(points[steps - 1 - i]);
        }
        if (timesteps[0] >= trainSteps || timesteps[^1] < 0)
            throw new SamplingOptionsException(
                $"{steps} {spacing.ToString().ToLowerInvariant()} steps with steps_offset {stepsOffset} reach timestep " +
                $"{(timesteps[0] >= trainSteps ? timesteps[0] : timesteps[^1])}, outside 0..{trainSteps - 1}");
        return timesteps;
    }

    /// <summary>
    /// Coefficients of x0 = a·x + b·m and ε = c·x + d·m for a model with the given prediction type at
    /// x_t = √ᾱ·x0 + √(1 − ᾱ)·ε.
    /// </summary>
    protected static (double X0FromSample, double X0FromModel, double EpsFromSample, double EpsFromModel) Parameterisation(
        PredictionType prediction, double alphaCumprod)
    {
        double sa = Math.Sqrt(alphaCumprod), sb = Math.Sqrt(1 - alphaCumprod);
        return prediction switch
        {
            PredictionType.Epsilon => (1 / sa, -sb / sa, 0, 1),
            PredictionType.Sample => (0, 1, 1 / sb, -sa / sb),
            PredictionType.VPrediction => (sa, -sb, sb, sa),
            _ => throw new ArgumentOutOfRangeException(nameof(prediction)),
        };
    }

    /// <summary>
    /// The step of a sampler that moves from its x0 prediction alone, with no ε term: next = a·x0 + b·x + c·x0_prev + d·z
    /// (DDPM, DPM-Solver++, Euler ancestral). Scalars are computed in float64 and rounded once here.
    /// </summary>
    protected static SamplerStepCoefficients X0Step(double x0FromSample, double x0FromModel, float clipRange,
        double fromX0, double fromSample, double fromPrevX0 = 0, double fromNoise = 0) => new(
        X0FromSample: (float)x0FromSample,
        X0FromModel: (float)x0FromModel,
        ClipRange: clipRange,
        EpsFromSample: 0,
        EpsFromModel: 0,
        NextFromX0: (float)fromX0,
        NextFromEps: 0,
        NextFromSample: (float)fromSample,
        NextFromPrevX0: (float)fromPrevX0,
        NextFromNoise: (float)fromNoise);

    protected static float ClipRange(SchedulerConfig config, bool clipByDefault) =>
        (config.ClipSample ?? clipByDefault) ? (float)config.ClipSampleRange : float.PositiveInfinity;
}
