namespace Diffusion.Kernels.Sampling;

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020, eq. 6–7), as diffusers' <c>DDPMScheduler.step</c>. From timestep t to
/// the previous one p (the next entry of the timestep list, or "before 0" after the last):
/// <code>
///   α_t = ᾱ_t/ᾱ_p,  β_t = 1 − α_t                        (ᾱ_p = 1 before 0)
///   x0  = from the model output, clipped to ±clip_sample_range when clip_sample
///   μ   = √ᾱ_p·β_t/(1 − ᾱ_t) · x0 + √α_t·(1 − ᾱ_p)/(1 − ᾱ_t) · x_t
///   x_p = μ + σ·z  with σ² = max((1 − ᾱ_p)/(1 − ᾱ_t)·β_t, 1e-20) (fixed_small) or β_t (fixed_large), only when t &gt; 0
/// </code>
/// Defaults when the config leaves them out: leading spacing, steps_offset 0, clip_sample true, fixed_small.
/// </summary>
public sealed class DdpmScheduler : Scheduler
{
    private readonly int[] _timesteps;
    private readonly float[] _modelTimesteps;

    public DdpmScheduler(SchedulerConfig config, int steps) : base(config, steps)
    {
        _timesteps = DiscreteTimesteps(config.NumTrainTimesteps, steps, config.TimestepSpacing ?? TimestepSpacing.Leading,
            config.StepsOffset ?? 0);
        _modelTimesteps = _timesteps.Select(t => (float)t).ToArray();
        Variance = config.VarianceType ?? VarianceType.FixedSmall;
    }

    public VarianceType Variance { get; }

    public override IReadOnlyList<float> Timesteps => _modelTimesteps;

    public override SamplerStepPlan Step(int index)
    {
        int t = _timesteps[index];
        // diffusers' previous_timestep: with a step count set, the previous timestep is the next one listed.
        int previous = index + 1 < _timesteps.Length ? _timesteps[index + 1] : -1;
        double alphaProd = Schedule.AlphasCumprod[t];
        double alphaProdPrev = previous >= 0 ? Schedule.AlphasCumprod[previous] : 1.0;
        double betaProd = 1 - alphaProd, betaProdPrev = 1 - alphaProdPrev;
        double currentAlpha = alphaProd / alphaProdPrev;
        double currentBeta = 1 - currentAlpha;

        var (x0FromSample, x0FromModel, _, _) = Parameterisation(Config.PredictionType, alphaProd);
        double fromX0 = Math.Sqrt(alphaProdPrev) * currentBeta / betaProd;
        double fromSample = Math.Sqrt(currentAlpha) * betaProdPrev / betaProd;

        bool noisy = t > 0;
        double std = !noisy ? 0
            : Variance == VarianceType.FixedLarge ? Math.Sqrt(currentBeta)
            : Math.Sqrt(Math.Max(betaProdPrev / betaProd * currentBeta, 1e-20));

        var coefficients = X0Step(x0FromSample, x0FromModel, ClipRange(Config, clipByDefault: true), fromX0, fromSample, fromNoise: std);
        return new SamplerStepPlan(_modelTimesteps[index], 1f, coefficients, noisy, UsesPreviousX0: false);
    }
}
