using System.Globalization;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

public class SchedulerConfigTests
{
    /// <summary>google/ddpm-cifar10-32's scheduler_config.json as published on the Hugging Face hub.</summary>
    private const string Cifar10 = """
        {"_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02, "beta_schedule": "linear",
         "beta_start": 0.0001, "clip_sample": true, "num_train_timesteps": 1000, "trained_betas": null,
         "variance_type": "fixed_small"}
        """;

    [Fact]
    public void Reads_a_diffusers_ddpm_config()
    {
        var config = SchedulerConfig.Parse(Cifar10, "cifar10.json");
        config.NumTrainTimesteps.Should().Be(1000);
        config.BetaSchedule.Should().Be(BetaSchedule.Linear);
        config.TrainedBetas.Should().BeNull();
        config.ClipSample.Should().BeTrue();
        config.VarianceType.Should().Be(VarianceType.FixedSmall);
        config.TimestepSpacing.Should().BeNull("absent fields stay absent so each sampler applies its own default");
    }

    [Fact]
    public void Absent_fields_take_each_samplers_diffusers_default()
    {
        var config = SchedulerConfig.Parse(Cifar10, "cifar10.json");
        // DDIMScheduler.from_config: set_alpha_to_one true → the last step lands on ᾱ = 1 and returns x0 exactly.
        var last = new DdimScheduler(config, 10, 0).Step(9).Coefficients;
        last.NextFromX0.Should().Be(1f);
        last.NextFromEps.Should().Be(0f);
        // DPMSolverMultistepScheduler and EulerAncestralDiscreteScheduler default to linspace spacing.
        new DpmSolverMultistepScheduler(config, 8).Timesteps[1].Should().Be(874f);
        new EulerAncestralScheduler(config, 5).Timesteps[1].Should().Be(749.25f);
        // With the field present, it wins: leading for DPM-Solver gives (n − i)·(T // (n + 1)).
        var leading = config with { TimestepSpacing = TimestepSpacing.Leading };
        new DpmSolverMultistepScheduler(leading, 8).Timesteps.Should().Equal(888, 777, 666, 555, 444, 333, 222, 111);
    }

    [Fact]
    public void Trained_betas_become_the_schedule_exactly()
    {
        // Full-precision doubles, and a beta_schedule the array must override: rounding through float32 or falling
        // back to the named schedule would both change the table.
        var random = new Random(41);
        double[] betas = [.. Enumerable.Range(0, 20).Select(_ => 1e-4 + 0.05 * random.NextDouble())];
        string json = $$"""
            {"num_train_timesteps": 20, "beta_schedule": "squaredcos_cap_v2",
             "trained_betas": [{{string.Join(", ", betas.Select(b => b.ToString("R", CultureInfo.InvariantCulture)))}}]}
            """;

        var schedule = new DdimScheduler(SchedulerConfig.Parse(json, "trained.json"), 5, 0).Schedule;

        schedule.Betas.Should().Equal(betas);
        double product = 1;
        schedule.AlphasCumprod.Should().Equal(betas.Select(b => product *= 1 - b));
    }

    /// <summary>The fields DDIMScheduler.__init__ defaults that a DDPM config leaves out, each with a value that is not its default.</summary>
    private static readonly (string Field, string Default, string Other)[] DdimDefaults =
    [
        ("set_alpha_to_one", "true", "false"),
        ("steps_offset", "0", "1"),
        ("timestep_spacing", "\"leading\"", "\"trailing\""),
        ("clip_sample", "true", "false"),
        ("prediction_type", "\"epsilon\"", "\"v_prediction\""),
    ];

    [Fact]
    public void Ddim_reads_a_sparse_ddpm_config_as_the_same_config_with_ddims_defaults_spelled_out()
    {
        const string Common = """
            "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"
            """;
        static string Spelled(string? flipped) => "{\"_class_name\": \"DDIMScheduler\", " + Common + ", " + string.Join(", ",
            DdimDefaults.Select(d => $"\"{d.Field}\": {(d.Field == flipped ? d.Other : d.Default)}")) + "}";

        var spelled = Run(Spelled(flipped: null));
        Run("{\"_class_name\": \"DDPMScheduler\", " + Common + "}").Should().Equal(spelled);

        // Every default changes this run when set the other way, so the equality above would catch a wrong one.
        foreach (var (field, _, _) in DdimDefaults)
            Run(Spelled(field)).Should().NotEqual(spelled, $"{field} must matter for the comparison to test its default");
    }

    /// <summary>Five DDIM steps of the toy model from seeded noise, every intermediate value left to the config.</summary>
    private static float[] Run(string json)
    {
        using var backend = new CpuBackend();
        var scheduler = Scheduler.Create(SamplerKind.Ddim, SchedulerConfig.Parse(json, "scheduler_config.json"), 5);
        return Pipeline.Sample(new ToyDenoiser(backend, 1, 4, 4), scheduler, new SplitMixNoise(3), [2, 1, 4, 4],
            cancellationToken: TestContext.Current.CancellationToken).Data;
    }

    [Theory]
    [InlineData("""{"thresholding": true}""", "thresholding")]
    [InlineData("""{"beta_schedule": "sigmoid"}""", "beta_schedule")]
    [InlineData("""{"prediction_type": "noise"}""", "prediction_type")]
    [InlineData("""{"timestep_spacing": 3}""", "timestep_spacing")]
    [InlineData("""{"num_train_timesteps": "1000"}""", "num_train_timesteps")]
    [InlineData("""{"num_train_timesteps": 1}""", "num_train_timesteps")]
    [InlineData("""{"beta_start": 0.5, "beta_end": 0.1}""", "beta_start")]
    [InlineData("""{"clip_sample": "yes"}""", "clip_sample")]
    [InlineData("""{"variance_type": "learned_range"}""", "variance_type")]
    [InlineData("""{"trained_betas": [0.1, 0.2]}""", "trained_betas")]
    [InlineData("""{"num_train_timesteps": 2, "trained_betas": [0.1, 1.5]}""", "trained_betas")]
    [InlineData("""{"algorithm_type": "sde-dpmsolver++"}""", "algorithm_type")]
    [InlineData("""{"use_karras_sigmas": true}""", "use_karras_sigmas")]
    [InlineData("""{"solver_order": 3}""", "solver_order")]
    [InlineData("""{"steps_offset": -1}""", "steps_offset")]
    [InlineData("""[1, 2]""", null)]
    [InlineData("""{"beta_start": """, null)]
    public void Rejects_what_it_cannot_honour_naming_the_file_and_field(string json, string? field)
    {
        var act = () => SchedulerConfig.Parse(json, "model/scheduler/scheduler_config.json");
        var error = act.Should().Throw<SchedulerConfigException>().Which;
        error.Field.Should().Be(field);
        error.FilePath.Should().Be("model/scheduler/scheduler_config.json");
        error.Message.Should().StartWith(field is null ? "model/scheduler/scheduler_config.json: " : $"model/scheduler/scheduler_config.json: '{field}': ");
    }

    /// <summary>10^12 is an integer, just far too large: the message says so rather than "expected an integer".</summary>
    [Theory]
    [InlineData("1000000000000", "1000000000000 is outside 2..100000")]
    [InlineData("1e30", "1e30 is outside 2..100000")]
    [InlineData("1", "1 is outside 2..100000")]
    [InlineData("10.5", "expected an integer, got 10.5")]
    [InlineData("\"1000\"", "expected an integer, got \"1000\"")]
    public void Num_train_timesteps_out_of_range_is_told_as_out_of_range(string value, string problem)
    {
        var act = () => SchedulerConfig.Parse($"{{\"num_train_timesteps\": {value}}}", "s.json");

        act.Should().Throw<SchedulerConfigException>().Where(e => e.Field == "num_train_timesteps" && e.Problem == problem);
    }

    [Fact]
    public void A_scheduler_config_over_the_config_limit_is_refused()
    {
        string path = Path.Combine(Path.GetTempPath(), $"huge-scheduler-{Guid.NewGuid():N}.json");
        try
        {
            HostileInput.WriteOversizedConfig(path);
            var act = () => SchedulerConfig.Load(path);
            act.Should().Throw<ModelConfigException>().Where(e => e.Problem.StartsWith("holds more than 16,777,216 bytes", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Load_reports_a_missing_file_as_a_bad_model()
    {
        var act = () => SchedulerConfig.Load(Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid(), "scheduler_config.json"));
        act.Should().Throw<ModelConfigException>().WithMessage("*scheduler_config.json: does not exist");
    }

    [Theory]
    [InlineData(SamplerKind.Ddpm, 1001)]
    [InlineData(SamplerKind.Ddim, 0)]
    [InlineData(SamplerKind.EulerAncestral, -3)]
    public void Step_counts_outside_1_to_T_are_rejected(SamplerKind kind, int steps)
    {
        var act = () => Scheduler.Create(kind, SchedulerConfig.Default, steps);
        act.Should().Throw<SamplingOptionsException>().WithMessage("*steps must lie in 1..1000*");
    }

    [Fact]
    public void Steps_offset_that_pushes_past_the_last_timestep_is_rejected()
    {
        var config = SchedulerConfig.Default with { StepsOffset = 1 };
        var act = () => Scheduler.Create(SamplerKind.Ddim, config, 1000);
        act.Should().Throw<SamplingOptionsException>().WithMessage("*reach timestep 1000*");
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Ddim_eta_outside_0_to_1_is_rejected(double eta)
    {
        var act = () => Scheduler.Create(SamplerKind.Ddim, SchedulerConfig.Default, 10, eta);
        act.Should().Throw<SamplingOptionsException>().WithMessage("*eta*");
    }

    [Fact]
    public void Euler_ancestral_refuses_sample_prediction()
    {
        var act = () => Scheduler.Create(SamplerKind.EulerAncestral, SchedulerConfig.Default with { PredictionType = PredictionType.Sample }, 10);
        act.Should().Throw<SchedulerConfigException>().Which.Field.Should().Be("prediction_type");
    }

    [Theory]
    [InlineData("ddpm", SamplerKind.Ddpm)]
    [InlineData("DDIM", SamplerKind.Ddim)]
    [InlineData("dpm++2m", SamplerKind.DpmSolverPlusPlus2M)]
    [InlineData("euler-a", SamplerKind.EulerAncestral)]
    public void Parses_command_line_sampler_names(string text, SamplerKind expected)
    {
        Scheduler.TryParseKind(text, out var kind).Should().BeTrue();
        kind.Should().Be(expected);
        Scheduler.TryParseKind(Scheduler.NameOf(kind), out var again).Should().BeTrue();
        again.Should().Be(kind);
    }

    [Fact]
    public void Unknown_sampler_names_are_refused() => Scheduler.TryParseKind("pndm", out _).Should().BeFalse();
}
