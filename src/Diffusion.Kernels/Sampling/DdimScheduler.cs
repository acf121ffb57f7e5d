using Diffusion.Kernels.Backends;

namespace Diffusion.Kernels.Sampling;

/// <summary>
/// DDIM (Song et al. 2021, eq. 12), as diffusers' <c>DDIMScheduler.step</c> with use_clipped_model_output false.
/// From timestep t to p = t − T // n (diffusers' rule, even when that is not the next listed timestep):
/// <code>
///   x0, ε = from the model output (ε from the UNclipped x0); then x0 is clipped when clip_sample
///   σ     = η·√((1 − ᾱ_p)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_p))
///   x_p   = √ᾱ_p·x0 + √(1 − ᾱ_p − σ²)·ε + σ·z
/// </code>
/// ᾱ_p before timestep 0 is 1 when set_alpha_to_one, else ᾱ_0. η = 0 makes sampling deterministic.
/// Defaults when the config leaves them out (so a DDPM config reads as DDIMScheduler.from_config reads it):
/// leading spacing, steps_offset 0, clip_sample true, set_alpha_to_one true.
/// </summary>
public sealed class DdimScheduler : Scheduler
{
    private readonly int[] _timesteps;
    private readonly float[] _modelTimesteps;
    private readonly double _finalAlphaCumprod;

    public DdimScheduler(SchedulerConfig config, int steps, double eta) : base(config, steps)
    {
        if (!(eta >= 0 && eta <= 1))
            throw new SamplingOptionsException($"eta must lie in [0, 1], got {eta}");
        Eta = eta;
        _timesteps = DiscreteTimesteps(config.NumTrainTimesteps, steps, config.TimestepSpacing ?? TimestepSpacing.Leading,
            config.StepsOffset ?? 0);
        _modelTimesteps = _timesteps.Select(t => (float)t).ToArray();
        _finalAlphaCumprod = (config.SetAlphaToOne ?? true) ? 1.0 : Schedule.AlphasCumprod[0];
    }

    public double Eta { get; }

    public override IReadOnlyList<float> Timesteps => _modelTimesteps;

    public override SamplerStepPlan Step(int index)
    {
        int t = _timesteps[index];
        int previous = t - Config.NumTrainTimesteps / StepCount;
        double alphaProd = Schedule.AlphasCumprod[t];
        double alphaProdPrev = previous >= 0 ? Schedule.AlphasCumprod[previous] : _finalAlphaCumprod;

        var (x0FromSample, x0FromModel, epsFromSample, epsFromModel) = Parameterisation(Config.PredictionType, alphaProd);
        double variance = (1 - alphaProdPrev) / (1 - alphaProd) * (1 - alphaProd / alphaProdPrev);
        double std = Eta * Math.Sqrt(variance);

        var coefficients = new SamplerStepCoefficients(
            X0FromSample: (float)x0FromSample,
            X0FromModel: (float)x0FromModel,
            ClipRange: ClipRange(Config, clipByDefault: true),
            EpsFromSample: (float)epsFromSample,
            EpsFromModel: (float)epsFromModel,
            NextFromX0: (float)Math.Sqrt(alphaProdPrev),
            NextFromEps: (float)Math.Sqrt(1 - alphaProdPrev - std * std),
            NextFromSample: 0,
            NextFromPrevX0: 0,
            NextFromNoise: (float)std);
        return new SamplerStepPlan(_modelTimesteps[index], 1f, coefficients, NeedsNoise: Eta > 0, UsesPreviousX0: false);
    }
}
