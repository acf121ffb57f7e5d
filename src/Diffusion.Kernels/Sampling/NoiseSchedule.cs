namespace Diffusion.Kernels.Sampling;

/// <summary>
/// The forward process of a scheduler config: β_t and ᾱ_t = Π_{s≤t}(1 − β_s) for t = 0..T−1, in float64.
/// diffusers keeps these in float32 (torch.linspace / torch.cumprod), which moves ᾱ by ~1e-6 relative; we keep
/// double so the schedule is the exact formula (the PyTorch goldens are float64 too) and each step's
/// coefficients are rounded to float32 only once, at the end.
/// </summary>
public sealed class NoiseSchedule
{
    private readonly double[] _betas;
    private readonly double[] _alphasCumprod;

    public NoiseSchedule(SchedulerConfig config)
    {
        int count = config.NumTrainTimesteps;
        _betas = config.TrainedBetas is { } trained ? [.. trained] : config.BetaSchedule switch
        {
            BetaSchedule.Linear => Numpy.Linspace(config.BetaStart, config.BetaEnd, count),
            BetaSchedule.ScaledLinear => Numpy.Linspace(Math.Sqrt(config.BetaStart), Math.Sqrt(config.BetaEnd), count)
                .Select(b => b * b).ToArray(),
            BetaSchedule.SquaredCosCapV2 => CosineBetas(count),
            _ => throw new ArgumentOutOfRangeException(nameof(config)),
        };
        _alphasCumprod = new double[count];
        double product = 1.0;
        for (int t = 0; t < count; t++)
        {
            product *= 1.0 - _betas[t];
            _alphasCumprod[t] = product;
        }
    }

    public int Length => _betas.Length;

    public IReadOnlyList<double> Betas => _betas;

    /// <summary>ᾱ_t: how much of the clean signal's variance survives at timestep t.</summary>
    public IReadOnlyList<double> AlphasCumprod => _alphasCumprod;

    /// <summary>Karras-style noise level σ_t = √((1 − ᾱ_t)/ᾱ_t), so x_t/√ᾱ_t = x0 + σ_t·ε.</summary>
    public double[] Sigmas() => _alphasCumprod.Select(a => Math.Sqrt((1.0 - a) / a)).ToArray();

    /// <summary>
    /// Improved DDPM (Nichol &amp; Dhariwal 2021) cosine schedule: ᾱ(t) = cos²((t + 0.008)/1.008 · π/2) and
    /// β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999), the cap keeping the last steps from being pure noise.
    /// </summary>
    private static double[] CosineBetas(int count)
    {
        static double AlphaBar(double t)
        {
            double c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2);
            return c * c;
        }

        var betas = new double[count];
        for (int i = 0; i < count; i++)
            betas[i] = Math.Min(1 - AlphaBar((i + 1) / (double)count) / AlphaBar(i / (double)count), 0.999);
        return betas;
    }
}

/// <summary>
/// numpy's formulas for the array helpers diffusers builds timesteps with, spelled out: the exact values matter
/// because timesteps are rounded half-to-even afterwards, and a value a hair off x.5 rounds the other way.
/// </summary>
internal static class Numpy
{
    /// <summary>np.linspace(start, stop, num): start + i·((stop − start)/(num − 1)), last element forced to stop.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var values = new double[num];
        if (num == 1)
        {
            values[0] = start;
            return values;
        }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) values[i] = i * step + start;
        values[^1] = stop;
        return values;
    }

    /// <summary>np.round: half to even.</summary>
    public static double Round(double value) => Math.Round(value, MidpointRounding.ToEven);

    /// <summary>
    /// np.interp(x, [0, 1, ..., n−1], table): slope·(x − j) + table[j] on the segment [j, j+1] holding x, so
    /// integer x returns table[x] exactly.
    /// </summary>
    public static double InterpolateAtIndex(IReadOnlyList<double> table, double x)
    {
        int last = table.Count - 1;
        if (x <= 0) return table[0];
        if (x >= last) return table[last];
        int j = (int)Math.Floor(x);
        double slope = table[j + 1] - table[j];
        return slope * (x - j) + table[j];
    }
}
