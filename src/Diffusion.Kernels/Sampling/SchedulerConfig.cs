using System.Text.Json;
using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Sampling;

/// <summary>A scheduler_config.json that we cannot use, naming the file, the field (null: the whole file) and the problem.</summary>
public sealed class SchedulerConfigException(string filePath, string? field, string problem)
    : ModelConfigException(filePath, field, problem);

public enum BetaSchedule
{
    Linear,
    ScaledLinear,
    SquaredCosCapV2,
}

public enum TimestepSpacing
{
    Leading,
    Trailing,
    Linspace,
}

/// <summary>What the U-Net predicts: the noise ε, the clean sample x0, or v = √ᾱ·ε − √(1−ᾱ)·x0.</summary>
public enum PredictionType
{
    Epsilon,
    Sample,
    VPrediction,
}

/// <summary>DDPM's ancestral noise variance: the posterior's β̃_t (fixed_small) or β_t itself (fixed_large).</summary>
public enum VarianceType
{
    FixedSmall,
    FixedLarge,
}

/// <summary>
/// The fields of a diffusers <c>scheduler_config.json</c> that our samplers read. A field the file leaves out is
/// null here, so each scheduler fills in its own diffusers default, exactly as <c>XScheduler.from_config</c> does
/// (a DDPM config sampled with DDIM takes DDIM's <c>set_alpha_to_one = true</c>; with DPM-Solver++ or Euler
/// ancestral it takes their <c>timestep_spacing = "linspace"</c>). Fields we do not implement are rejected when
/// set to anything but their neutral value; unknown fields are ignored, as diffusers ignores them.
/// </summary>
public sealed record SchedulerConfig
{
    /// <summary>Where the values came from, for error messages.</summary>
    public string Source { get; init; } = "scheduler config";

    public int NumTrainTimesteps { get; init; } = 1000;

    public double BetaStart { get; init; } = 0.0001;

    public double BetaEnd { get; init; } = 0.02;

    public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;

    /// <summary>Explicit β_0..β_{T−1}; when set, it replaces <see cref="BetaSchedule"/>.</summary>
    public IReadOnlyList<double>? TrainedBetas { get; init; }

    public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;

    public TimestepSpacing? TimestepSpacing { get; init; }

    public int? StepsOffset { get; init; }

    public bool? ClipSample { get; init; }

    public double ClipSampleRange { get; init; } = 1.0;

    public bool? SetAlphaToOne { get; init; }

    public VarianceType? VarianceType { get; init; }

    /// <summary>DPM-Solver: 1 or 2.</summary>
    public int SolverOrder { get; init; } = 2;

    /// <summary>DPM-Solver: timesteps whose log-SNR λ falls below this are never visited (−∞: none are cut).</summary>
    public double LambdaMinClipped { get; init; } = double.NegativeInfinity;

    /// <summary>diffusers' own defaults (DDPMScheduler()): linear β from 1e-4 to 0.02 over 1000 steps.</summary>
    public static SchedulerConfig Default { get; } = new() { Source = "default scheduler config" };

    /// <summary>Reads a diffusers scheduler_config.json, under the same size limit as every config file.</summary>
    public static SchedulerConfig Load(string path) => Parse(ConfigFiles.ReadText(path), path);

    public static SchedulerConfig Parse(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new SchedulerConfigException(source, null, $"is not valid JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new SchedulerConfigException(source, null, "is not a JSON object");
            return new Reader(root, source).Read();
        }
    }

    /// <summary>Reads one field at a time so every error names the field it is about.</summary>
    private readonly struct Reader(JsonElement root, string source)
    {
        public SchedulerConfig Read()
        {
            RejectUnless("thresholding", false, "dynamic thresholding is not supported");
            RejectUnless("rescale_betas_zero_snr", false, "zero-terminal-SNR rescaling is not supported");
            RejectUnless("use_karras_sigmas", false, "Karras sigmas are not supported");
            RejectUnless("use_lu_lambdas", false, "uniform-λ steps are not supported");
            RejectUnless("use_exponential_sigmas", false, "exponential sigmas are not supported");
            RejectUnless("use_beta_sigmas", false, "beta sigmas are not supported");
            RejectUnless("use_flow_sigmas", false, "flow-matching sigmas are not supported");
            RejectUnless("euler_at_final", false, "euler_at_final is not supported");
            RejectUnlessText("algorithm_type", "dpmsolver++", "only DPM-Solver++ (\"dpmsolver++\") is supported");
            RejectUnlessText("solver_type", "midpoint", "only the \"midpoint\" second-order solver is supported");
            RejectUnlessText("final_sigmas_type", "zero", "only \"zero\" (the last step lands on σ = 0) is supported");

            int timesteps = Int("num_train_timesteps", 2, 100_000) ?? 1000;

            var config = new SchedulerConfig
            {
                Source = source,
                NumTrainTimesteps = timesteps,
                BetaStart = Double("beta_start") ?? 0.0001,
                BetaEnd = Double("beta_end") ?? 0.02,
                BetaSchedule = Choice("beta_schedule", BetaSchedules) ?? BetaSchedule.Linear,
                TrainedBetas = TrainedBetas(timesteps),
                PredictionType = Choice("prediction_type", PredictionTypes) ?? PredictionType.Epsilon,
                TimestepSpacing = Choice("timestep_spacing", Spacings),
                StepsOffset = Int("steps_offset"),
                ClipSample = Bool("clip_sample"),
                ClipSampleRange = Double("clip_sample_range") ?? 1.0,
                SetAlphaToOne = Bool("set_alpha_to_one"),
                VarianceType = Choice("variance_type", VarianceTypes),
                SolverOrder = Int("solver_order") ?? 2,
                LambdaMinClipped = Double("lambda_min_clipped") ?? double.NegativeInfinity,
            };
            if (config.TrainedBetas is null && !(config.BetaStart > 0 && config.BetaEnd < 1 && config.BetaStart <= config.BetaEnd))
                throw Error("beta_start", $"β must rise within (0, 1), got beta_start {config.BetaStart} and beta_end {config.BetaEnd}");
            if (!(config.ClipSampleRange > 0))
                throw Error("clip_sample_range", $"must be positive, got {config.ClipSampleRange}");
            if (config.StepsOffset is < 0 || config.StepsOffset >= timesteps)
                throw Error("steps_offset", $"must lie in 0..{timesteps - 1}, got {config.StepsOffset}");
            if (config.SolverOrder is not (1 or 2))
                throw Error("solver_order", $"only 1 and 2 are supported, got {config.SolverOrder}");
            return config;
        }

        private static readonly Dictionary<string, BetaSchedule> BetaSchedules = new()
        {
            ["linear"] = BetaSchedule.Linear,
            ["scaled_linear"] = BetaSchedule.ScaledLinear,
            ["squaredcos_cap_v2"] = BetaSchedule.SquaredCosCapV2,
        };

        private static readonly Dictionary<string, PredictionType> PredictionTypes = new()
        {
            ["epsilon"] = PredictionType.Epsilon,
            ["sample"] = PredictionType.Sample,
            ["v_prediction"] = PredictionType.VPrediction,
        };

        private static readonly Dictionary<string, TimestepSpacing> Spacings = new()
        {
            ["leading"] = Sampling.TimestepSpacing.Leading,
            ["trailing"] = Sampling.TimestepSpacing.Trailing,
            ["linspace"] = Sampling.TimestepSpacing.Linspace,
        };

        private static readonly Dictionary<string, VarianceType> VarianceTypes = new()
        {
            ["fixed_small"] = Sampling.VarianceType.FixedSmall,
            ["fixed_large"] = Sampling.VarianceType.FixedLarge,
        };

        private SchedulerConfigException Error(string field, string problem) => new(source, field, problem);

        private JsonElement? Field(string name) =>
            root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        private int? Int(string name) => Int(name, int.MinValue, int.MaxValue);

        /// <summary>An integer within [min, max]; an integer beyond it (10^12) is told as out of range, not as "not an integer".</summary>
        private int? Int(string name, int min, int max)
        {
            if (Field(name) is not { } value) return null;
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || number != Math.Floor(number))
                throw Error(name, $"expected an integer, got {value.GetRawText()}");
            if (number < min || number > max)
                throw Error(name, min == int.MinValue ? $"{value.GetRawText()} does not fit a 32-bit integer" : $"{value.GetRawText()} is outside {min}..{max}");
            return (int)number;
        }

        private double? Double(string name)
        {
            if (Field(name) is not { } value) return null;
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double result) || !double.IsFinite(result))
                throw Error(name, $"expected a number, got {value.GetRawText()}");
            return result;
        }

        private bool? Bool(string name) => Field(name) switch
        {
            null => null,
            { ValueKind: JsonValueKind.True } => true,
            { ValueKind: JsonValueKind.False } => false,
            { } value => throw Error(name, $"expected true or false, got {value.GetRawText()}"),
        };

        private T? Choice<T>(string name, Dictionary<string, T> choices) where T : struct
        {
            if (Field(name) is not { } value) return null;
            string? text = value.ValueKind == JsonValueKind.String ? value.GetString() : null;
            if (text is not null && choices.TryGetValue(text, out var choice)) return choice;
            throw Error(name, $"{value.GetRawText()} is not supported (supported: {string.Join(", ", choices.Keys)})");
        }

        private void RejectUnless(string name, bool neutral, string problem)
        {
            if (Bool(name) is { } value && value != neutral) throw Error(name, problem);
        }

        private void RejectUnlessText(string name, string neutral, string problem)
        {
            if (Field(name) is not { } value) return;
            if (value.ValueKind != JsonValueKind.String || value.GetString() != neutral)
                throw Error(name, $"{value.GetRawText()}: {problem}");
        }

        private double[]? TrainedBetas(int timesteps)
        {
            if (Field("trained_betas") is not { } value) return null;
            if (value.ValueKind != JsonValueKind.Array)
                throw Error("trained_betas", "expected an array of numbers");
            if (value.GetArrayLength() != timesteps)
                throw Error("trained_betas", $"holds {value.GetArrayLength()} values but num_train_timesteps is {timesteps}");
            var betas = new double[timesteps];
            int i = 0;
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetDouble(out double beta) || !(beta > 0 && beta < 1))
                    throw Error("trained_betas", $"value {i} must lie in (0, 1), got {item.GetRawText()}");
                betas[i++] = beta;
            }
            return betas;
        }
    }
}
