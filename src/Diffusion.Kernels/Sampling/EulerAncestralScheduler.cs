namespace Diffusion.Kernels.Sampling;

/// <summary>
/// Euler ancestral (Karras et al. 2022 / k-diffusion's sample_euler_ancestral), as diffusers'
/// <c>EulerAncestralDiscreteScheduler</c>. The sample lives at noise level σ (x = x0 + σ·ε, unit-variance data),
/// so the model sees x/√(σ² + 1), the variance-preserving input it was trained on:
/// <code>
///   x0     = x − σ·m (epsilon)  or  x/(σ² + 1) − m·σ/√(σ² + 1) (v_prediction)
///   σ_up   = √(σ_next²·(σ² − σ_next²)/σ²),  σ_down = √(σ_next² − σ_up²)
///   x_next = x + (x − x0)/σ · (σ_down − σ) + σ_up·z
/// </code>
/// Timesteps (linspace by default) are fractional, linspace(0, T−1, n) in float32, and σ at a fractional timestep
/// is interpolated linearly in the table √((1 − ᾱ_t)/ᾱ_t). The initial noise is scaled by the largest σ
/// (by √(σ_max² + 1) for leading spacing).
/// </summary>
public sealed class EulerAncestralScheduler : Scheduler
{
    private readonly float[] _timesteps;
    private readonly double[] _sigmas;

    public EulerAncestralScheduler(SchedulerConfig config, int steps) : base(config, steps)
    {
        if (config.PredictionType == PredictionType.Sample)
            throw new SchedulerConfigException(config.Source, "prediction_type",
                "\"sample\" is not supported by Euler ancestral (diffusers does not implement it either)");
        Spacing = config.TimestepSpacing ?? TimestepSpacing.Linspace;
        _timesteps = SpacedTimesteps(config, steps, Spacing);
        if (_timesteps[0] > config.NumTrainTimesteps - 1)
            throw new SamplingOptionsException($"euler-a: steps_offset {config.StepsOffset} pushes timestep {_timesteps[0]} past {config.NumTrainTimesteps - 1}");
        double[] table = Schedule.Sigmas();
        _sigmas = [.. _timesteps.Select(t => Numpy.InterpolateAtIndex(table, t)), 0.0];
    }

    public TimestepSpacing Spacing { get; }

    /// <summary>σ at each step, then the final 0.</summary>
    public IReadOnlyList<double> Sigmas => _sigmas;

    public override IReadOnlyList<float> Timesteps => _timesteps;

    public override double InitNoiseSigma
    {
        get
        {
            double max = _sigmas.Max();
            return Spacing == TimestepSpacing.Leading ? Math.Sqrt(max * max + 1) : max;
        }
    }

    public override SamplerStepPlan Step(int index)
    {
        double sigma = _sigmas[index], sigmaNext = _sigmas[index + 1];
        var (x0FromSample, x0FromModel) = Config.PredictionType == PredictionType.VPrediction
            ? (1 / (sigma * sigma + 1), -sigma / Math.Sqrt(sigma * sigma + 1))
            : (1.0, -sigma);
        double sigmaUp = Math.Sqrt(sigmaNext * sigmaNext * (sigma * sigma - sigmaNext * sigmaNext) / (sigma * sigma));
        double sigmaDown = Math.Sqrt(sigmaNext * sigmaNext - sigmaUp * sigmaUp);
        // x + (x − x0)·(σ_down − σ)/σ, regrouped into one coefficient per tensor.
        double k = (sigmaDown - sigma) / sigma;

        var coefficients = X0Step(x0FromSample, x0FromModel, float.PositiveInfinity, fromX0: -k, fromSample: 1 + k, fromNoise: sigmaUp);
        // diffusers draws the step's noise unconditionally, the last step's (σ_up = 0) included; a stream whose
        // values depend on the order of draws (torch's) needs the same count.
        return new SamplerStepPlan(_timesteps[index], (float)(1 / Math.Sqrt(sigma * sigma + 1)), coefficients,
            NeedsNoise: true, UsesPreviousX0: false);
    }

    private static float[] SpacedTimesteps(SchedulerConfig config, int steps, TimestepSpacing spacing)
    {
        int trainSteps = config.NumTrainTimesteps;
        int offset = config.StepsOffset ?? 0;
        return spacing switch
        {
            TimestepSpacing.Linspace => Numpy.Linspace(0, trainSteps - 1, steps).Reverse().Select(t => (float)t).ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, steps)
                .Select(i => (float)((steps - 1 - i) * (trainSteps / steps)) + offset).ToArray(),
            _ => Enumerable.Range(0, steps)
                .Select(i => (float)Numpy.Round(trainSteps + i * -((double)trainSteps / steps)) - 1).ToArray(),
        };
    }
}
