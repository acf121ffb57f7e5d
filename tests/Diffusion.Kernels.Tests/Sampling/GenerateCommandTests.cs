using Diffusion.Cli;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Sampling;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary><c>diffuse generate</c>'s refusals: each is made before any work, with one line and its exit code.</summary>
public sealed class GenerateCommandTests : IDisposable
{
    // Values of Diffusion.Cli.ExitCodes (internal to the CLI).
    private const int Usage = 2, BadModel = 3, BadInput = 4, OutputExists = 5;

    private readonly string _folder = Directory.CreateTempSubdirectory("diffuse-generate-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private GenerateCommand.Request Request(string? model = null, string? noise = null, int? batch = null, bool force = false, string? saveTensor = null) =>
        new(model ?? Path.Combine(_folder, "no-model"), SamplerKind.Ddim, null, 0, 1, batch, DeviceKind.Cpu, noise, saveTensor,
            Path.Combine(_folder, "out.png"), Scale: null, force, Verbose: false);

    private (int Code, string Log) Run(GenerateCommand.Request request)
    {
        var log = new StringWriter();
        int code = GenerateCommand.Run(request, log, TestContext.Current.CancellationToken);
        return (code, log.ToString());
    }

    [Fact]
    public void An_existing_output_is_kept_without_force()
    {
        string png = Path.Combine(_folder, "out.png");
        File.WriteAllText(png, "keep me");
        var (code, log) = Run(Request());
        code.Should().Be(OutputExists);
        log.Should().Contain("already exists; pass --force");
        File.ReadAllText(png).Should().Be("keep me");
    }

    [Fact]
    public void An_existing_tensor_output_is_kept_without_force()
    {
        string tensor = Path.Combine(_folder, "final.safetensors");
        File.WriteAllText(tensor, "keep me");
        Run(Request(saveTensor: tensor)).Code.Should().Be(OutputExists);
    }

    [Fact]
    public void A_missing_output_folder_is_an_unwritable_output()
    {
        var request = Request() with { Out = Path.Combine(_folder, "missing", "out.png") };
        var (code, log) = Run(request);
        code.Should().Be(9, "README: the output cannot be written");
        log.Should().Contain("does not exist");
    }

    [Fact]
    public void A_missing_model_is_a_bad_model_and_nothing_is_written()
    {
        var (code, log) = Run(Request(force: true));
        code.Should().Be(BadModel);
        log.Trim().Split('\n').Should().ContainSingle().Which.Should().StartWith("diffuse: ").And.Contain("no-model");
        Directory.GetFiles(_folder).Should().BeEmpty();
    }

    [Fact]
    public void Noise_files_must_hold_one_4d_tensor()
    {
        string noise = Path.Combine(_folder, "noise.safetensors");
        SafetensorsWriter.Write(noise, [new("a", new HostTensor(2, 3)), new("b", new HostTensor(2, 3))]);
        var (code, log) = Run(Request(noise: noise));
        code.Should().Be(BadInput);
        log.Should().Contain("'sample' or a single tensor");

        SafetensorsWriter.Write(noise, [new("sample", new HostTensor(2, 3))]);
        Run(Request(noise: noise)).Log.Should().Contain("(B, C, H, W)");
    }

    [Fact]
    public void Batch_must_agree_with_the_noise_file()
    {
        string noise = Path.Combine(_folder, "noise.safetensors");
        SafetensorsWriter.Write(noise, [new("sample", new HostTensor(3, 1, 4, 4))]);
        var (code, log) = Run(Request(noise: noise, batch: 2));
        code.Should().Be(Usage);
        log.Should().Contain("--batch 2 disagrees with the 3 samples");
    }

    [Theory]
    [InlineData("--scheduler", "pndm")]
    [InlineData("--device", "tpu")]
    // Enum parsing would take the numbers: 1 as cpu, 7 as a DeviceKind that does not exist.
    [InlineData("--device", "1")]
    [InlineData("--device", "7")]
    [InlineData("--steps", "many")]
    public void Bad_option_values_are_parse_errors(string option, string value) =>
        GenerateCommand.Create().Parse([option, value]).Errors.Should().NotBeEmpty();

    [Theory]
    [InlineData("cpu", DeviceKind.Cpu)]
    [InlineData("CUDA", DeviceKind.Cuda)]
    [InlineData("Auto", DeviceKind.Auto)]
    public void Device_names_parse_in_any_case(string text, DeviceKind expected)
    {
        var parse = GenerateCommand.Create().Parse(["--device", text]);
        parse.Errors.Should().BeEmpty();
        parse.GetValue<DeviceKind?>("--device").Should().Be(expected);
    }

    [Fact]
    public void Sampler_names_parse_to_their_kind()
    {
        var command = GenerateCommand.Create();
        var parse = command.Parse(["--scheduler", "euler-a"]);
        parse.Errors.Should().BeEmpty();
        parse.GetValue<SamplerKind?>("--scheduler").Should().Be(SamplerKind.EulerAncestral);
        command.Parse([]).GetValue<SamplerKind?>("--scheduler").Should().BeNull("the command takes ddim when none is given");
    }
}
