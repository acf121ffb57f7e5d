using Diffusion.Cli;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Gpu;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.IO;
using Diffusion.Kernels.Tests.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>
/// Each failure class of the real <c>diffuse</c> process ends in the exit code README.md documents for it, with one
/// line on stderr (stack traces only with <c>--verbose</c>) and no file written.
/// </summary>
public sealed class ExitCodeTests : IDisposable
{
    private static readonly Golden Tiny = Golden.Load("unet_tiny");

    // Models and inputs live apart from the outputs, so "no file written" looks at the outputs alone.
    private readonly TempDirectory _inputs = new();
    private readonly TempDirectory _dir = new();

    public void Dispose()
    {
        _inputs.Dispose();
        _dir.Dispose();
    }

    /// <summary>Failures no process test can provoke here (the GPU ones) still map to README's codes.</summary>
    public static TheoryData<Exception, int> Failures() => new()
    {
        { new OperationCanceledException(), 130 },
        { new UsageException("--steps: 0"), 2 },
        { new ModelConfigException("m/config.json", "norm_num_groups", "must divide 30"), 3 },
        { new SafetensorsFormatException("x.safetensors", "truncated"), 4 },
        { new OutputExistsException("out.png"), 5 },
        { new OutputUnwritableException("out.png", "cannot be written: No space left on device"), 9 },
        { new InsufficientMemoryForBatchException(64, 512, 512, 1L << 40, 1L << 30, "cpu"), 6 },
        { new GpuDeviceException("the GPU could not allocate 4.0 GB: out of memory", isOutOfMemory: true), 6 },
        { new NonFiniteSampleException("NaN at step 3"), 7 },
        { new GpuDeviceException("the GPU failed while launching Conv2d.Version1: illegal address"), 8 },
        { new GraphCaptureException("needed new device memory while capturing"), 8 },
        { new DeviceUnavailableException("no CUDA device"), 8 },
        { new InvalidOperationException("a bug"), 1 },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void Every_failure_class_has_its_documented_exit_code(Exception failure, int code)
    {
        var log = new StringWriter();

        CliErrors.Report(failure, verbose: false, log).Should().Be(code);

        log.ToString().Should().StartWith("diffuse: ");
    }

    /// <summary>A long list of checkpoint problems is capped in the message; --verbose prints every one.</summary>
    [Fact]
    public void Verbose_lists_every_checkpoint_problem_the_message_leaves_out()
    {
        var problems = Enumerable.Range(0, 25).Select(i => $"unexpected: stray.{i} [1]").ToList();
        var error = new CheckpointMismatchException("w.safetensors", problems, [], [.. problems], []);
        var quiet = new StringWriter();
        var verbose = new StringWriter();

        CliErrors.Report(error, verbose: false, quiet).Should().Be(3);
        CliErrors.Report(error, verbose: true, verbose).Should().Be(3);

        quiet.ToString().Should().Contain("stray.9 [1]").And.NotContain("stray.10 [1]").And.Contain("… and 15 more (--verbose lists them all)");
        verbose.ToString().Should().Contain("stray.24 [1]");
    }

    [Theory]
    [InlineData("generate", "--device", "tpu")]
    [InlineData("generate", "--steps", "many")]
    [InlineData("generate", "--scheduler", "pndm")]
    [InlineData("unet", "--input", "x.safetensors")]
    [InlineData("frobnicate")]
    public void A_mistyped_command_line_is_a_usage_error_in_one_line(params string[] args)
    {
        var run = DiffuseProcess.Run(args);

        run.ExitCode.Should().Be(2, run.StandardError);
        OneLine(run.StandardError).Should().Contain("--help");
        run.StandardOutput.Should().BeEmpty("the help text would bury the one line that says what is wrong");
    }

    /// <summary>The weights file belongs to the model, so its corruption is a bad model (3), not a bad input (4).</summary>
    [Theory]
    [InlineData("generate")]
    [InlineData("unet")]
    [InlineData("info")]
    public void A_corrupt_weights_file_is_a_bad_model_for_every_command(string command)
    {
        string model = WriteModel("corrupt", ModelJsonText(), Tiny.Weights);
        string weights = Path.Combine(model, ModelFolder.WeightsFileName);
        File.WriteAllBytes(weights, [9, 0, 0, 0, 0, 0, 0, 0, (byte)'{']);

        var run = DiffuseProcess.Run(Arguments(command, model));

        run.ExitCode.Should().Be(3, run.StandardError);
        OneLine(run.StandardError).Should().Contain(weights);
        Directory.GetFiles(_dir.Path).Should().BeEmpty();
    }

    [Fact]
    public void Verbose_adds_the_stack_trace_and_only_then()
    {
        string model = WriteModel("corrupt", ModelJsonText(), Tiny.Weights);
        File.WriteAllBytes(Path.Combine(model, ModelFolder.WeightsFileName), [1, 2, 3]);

        var quiet = DiffuseProcess.Run([.. Arguments("generate", model)]);
        var verbose = DiffuseProcess.Run([.. Arguments("generate", model), "--verbose"]);

        quiet.StandardError.Should().NotContain(" at Diffusion.");
        verbose.ExitCode.Should().Be(quiet.ExitCode);
        verbose.StandardError.Should().Contain(" at Diffusion.Kernels.");
    }

    [Fact]
    public void A_model_whose_output_is_not_finite_exits_7_naming_the_step()
    {
        var weights = new Dictionary<string, HostTensor>(Tiny.Weights);
        var bias = (float[])weights["conv_out.bias"].Data.Clone();
        bias[1] = float.NaN;
        weights["conv_out.bias"] = new HostTensor(weights["conv_out.bias"].Shape, bias);
        string model = WriteModel("nan", ModelJsonText(), weights);

        var run = DiffuseProcess.Run(Arguments("generate", model));

        run.ExitCode.Should().Be(7, run.StandardError);
        run.StandardError.Should().Contain("non-finite").And.Contain("at step 1 of 3");
        Directory.GetFiles(_dir.Path).Should().BeEmpty();
    }

    /// <summary>A 65536×65536 sample needs terabytes of activations: refused before any of them is allocated.</summary>
    [Fact]
    public void A_sample_beyond_free_memory_exits_6_before_sampling()
    {
        string model = WriteModel("huge", ModelJson.With(ModelJsonText(), "sample_size", "65536"), Tiny.Weights);

        var run = DiffuseProcess.Run(Arguments("generate", model));

        run.ExitCode.Should().Be(6, run.StandardError);
        OneLine(run.StandardError).Should().Contain("65536×65536").And.Contain("MiB");
        run.StandardError.Should().NotContain("step 1", "the refusal comes before the first step");
        Directory.GetFiles(_dir.Path).Should().BeEmpty();
    }

    [Fact]
    public void Force_replaces_an_existing_output()
    {
        string model = WriteModel("tiny", ModelJsonText(), Tiny.Weights);
        string png = Path.Combine(_dir.Path, "out.png");
        File.WriteAllText(png, "old contents");

        var run = DiffuseProcess.Run([.. Arguments("generate", model), "--force"]);

        run.ExitCode.Should().Be(0, run.StandardError);
        File.ReadAllBytes(png).Take(8).Should().Equal(0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A);
    }

    private static string ModelJsonText() => File.ReadAllText(Tiny.ConfigPath);

    private string WriteModel(string name, string configJson, IReadOnlyDictionary<string, HostTensor> weights)
    {
        string folder = _inputs.File(name);
        CheckpointFixture.WriteUNetFolder(folder, configJson, weights);
        return folder;
    }

    private string[] Arguments(string command, string model)
    {
        string output = Path.Combine(_dir.Path, "out");
        return command switch
        {
            "generate" => ["generate", "--model", model, "--steps", "3", "--batch", "1", "--seed", "2", "--device", "cpu", "--out", output + ".png"],
            "unet" => ["unet", "--model", model, "--input", WriteInput(), "--timestep", "5", "--device", "cpu", "--out", output + ".safetensors"],
            _ => ["info", model],
        };
    }

    private string WriteInput()
    {
        string path = _inputs.File("input.safetensors");
        SafetensorsWriter.Write(path, [new("sample", Tiny.Sample)]);
        return path;
    }

    /// <summary>The error line; status lines ("device: cpu", a missing scheduler config) may precede it.</summary>
    private static string OneLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        lines.Should().NotContain(l => l.StartsWith("at ", StringComparison.Ordinal), "stack traces are for --verbose");
        var errors = lines.Where(l => l.StartsWith("diffuse: ", StringComparison.Ordinal)).ToArray();
        errors.Should().ContainSingle("every failure is told in one line: {0}", stderr);
        return errors[0];
    }
}
