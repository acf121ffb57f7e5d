namespace Diffusion.Kernels.Sampling;

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), as diffusers' <c>DPMSolverMultistepScheduler</c>
/// with its defaults: algorithm dpmsolver++, solver_order 2, midpoint, lower_order_final, final sigma 0.
/// With σ the noise level of a step, α = 1/√(σ² + 1), s = σ·α and log-SNR λ = ln α − ln s:
/// <code>
///   x0  = data prediction from the model output (at the current σ)
///   h   = λ_next − λ_cur
///   1st order:  x_next = (s_next/s_cur)·x − α_next·(e^{−h} − 1)·x0
///   2nd order:  D1 = (x0 − x0_prev)/r,  r = (λ_cur − λ_prev)/h,
///               x_next = (s_next/s_cur)·x − α_next·(e^{−h} − 1)·(x0 + D1/2)
/// </code>
/// The first step has no history and the last step (to σ = 0, where x_next = x0) is always first order.
/// Timesteps: linspace(0, T−1, n+1) rounded, descending, the final 0 dropped (spacing linspace by default).
/// </summary>
public sealed class DpmSolverMultistepScheduler : Scheduler
{
    private readonly int[] _timesteps;
    private readonly float[] _modelTimesteps;
    private readonly double[] _sigmas;

    public DpmSolverMultistepScheduler(SchedulerConfig config, int steps) : base(config, steps)
    {
        int trainSteps = config.NumTrainTimesteps;
        int last = trainSteps - ClippedCount(config);
        _timesteps = SpacedTimesteps(config, steps, last);
        if (_timesteps.Length == 0 || _timesteps.Distinct().Count() != _timesteps.Length || _timesteps.Any(t => t < 0 || t >= trainSteps))
            throw new SamplingOptionsException(
                $"dpm++2m: {steps} steps give the timesteps [{string.Join(", ", _timesteps)}], which are not distinct timesteps in 0..{trainSteps - 1}");
        _modelTimesteps = _timesteps.Select(t => (float)t).ToArray();
        double[] table = Schedule.Sigmas();
        _sigmas = [.. _timesteps.Select(t => Numpy.InterpolateAtIndex(table, t)), 0.0];
    }

    /// <summary>σ at each step, then the final 0.</summary>
    public IReadOnlyList<double> Sigmas => _sigmas;

    public override IReadOnlyList<float> Timesteps => _modelTimesteps;

    public override SamplerStepPlan Step(int index)
    {
        double sigma = _sigmas[index];
        var (alphaCur, sCur) = AlphaSigma(sigma);
        var (x0FromSample, x0FromModel) = Config.PredictionType switch
        {
            PredictionType.Epsilon => (1 / alphaCur, -sCur / alphaCur),
            PredictionType.Sample => (0.0, 1.0),
            PredictionType.VPrediction => (alphaCur, -sCur),
            _ => throw new InvalidOperationException(),
        };

        bool firstOrder = Config.SolverOrder == 1 || index == 0 || index == StepCount - 1;
        double sigmaNext = _sigmas[index + 1];
        double fromSample, fromX0, fromPrevX0 = 0;
        if (sigmaNext == 0)
        {
            // The limit of the first-order update as s_next → 0 and α_next → 1: the step returns x0 itself.
            (fromSample, fromX0) = (0, 1);
        }
        else
        {
            var (alphaNext, sNext) = AlphaSigma(sigmaNext);
            double h = Lambda(alphaNext, sNext) - Lambda(alphaCur, sCur);
            double c = -alphaNext * (Math.Exp(-h) - 1.0);
            fromSample = sNext / sCur;
            fromX0 = c;
            if (!firstOrder)
            {
                var (alphaPrev, sPrev) = AlphaSigma(_sigmas[index - 1]);
                double r = (Lambda(alphaCur, sCur) - Lambda(alphaPrev, sPrev)) / h;
                fromX0 = c * (1 + 0.5 / r);
                fromPrevX0 = -c * 0.5 / r;
            }
        }

        var coefficients = X0Step(x0FromSample, x0FromModel, float.PositiveInfinity, fromX0, fromSample, fromPrevX0);
        return new SamplerStepPlan(_modelTimesteps[index], 1f, coefficients, NeedsNoise: false, UsesPreviousX0: fromPrevX0 != 0);
    }

    private static (double Alpha, double S) AlphaSigma(double sigma)
    {
        double alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        return (alpha, sigma * alpha);
    }

    private static double Lambda(double alpha, double s) => Math.Log(alpha) - Math.Log(s);

    /// <summary>How many of the noisiest timesteps lambda_min_clipped cuts off (their λ lies below it).</summary>
    private static int ClippedCount(SchedulerConfig config)
    {
        if (double.IsNegativeInfinity(config.LambdaMinClipped)) return 0;
        var alphas = new NoiseSchedule(config).AlphasCumprod;
        return alphas.Count(a => 0.5 * Math.Log(a) - 0.5 * Math.Log(1 - a) < config.LambdaMinClipped);
    }

    private static int[] SpacedTimesteps(SchedulerConfig config, int steps, int last)
    {
        int offset = config.StepsOffset ?? 0;
        switch (config.TimestepSpacing ?? TimestepSpacing.Linspace)
        {
            case TimestepSpacing.Linspace:
            {
                double[] points = Numpy.Linspace(0, last - 1, steps + 1);
                return Enumerable.Range(0, steps).Select(i => (int)Numpy.Round(points[steps - i])).ToArray();
            }
            case TimestepSpacing.Leading:
            {
                int ratio = last / (steps + 1);
                return Enumerable.Range(0, steps).Select(i => (steps - i) * ratio + offset).ToArray();
            }
            default:
            {
                double ratio = (double)config.NumTrainTimesteps / steps;
                return Enumerable.Range(0, steps)
                    .Select(i => (int)Numpy.Round(last + i * -ratio) - 1)
                    .Where(t => t >= 0)
                    .ToArray();
            }
        }
    }
}
