using Diffusion.Kernels.IO;
using Diffusion.Kernels.Tests.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

public class UnetCommandTests
{
    [Fact]
    public void Diffuse_unet_reproduces_the_pytorch_output()
    {
        var golden = Golden.Load("unet_tiny");
        using var folder = new TemporaryModelFolder(golden.ConfigPath, golden.Weights, SafetensorsDType.F32);
        string input = Path.Combine(folder.Path, "input.safetensors");
        string output = Path.Combine(folder.Path, "output.safetensors");
        SafetensorsWriter.Write(input, [new("sample", golden.Sample)]);

        var run = DiffuseProcess.Run("unet", "--model", folder.Path, "--input", input,
            "--timestep", string.Join(',', golden.Timesteps.Select(t => t.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
            "--out", output, "--device", "cpu");

        run.ExitCode.Should().Be(0, run.StandardError);
        using var file = SafetensorsFile.Open(output);
        UNet2DParityTests.MaxAbsDifference(file.ReadTensor("sample"), golden.Output).Should().BeLessThanOrEqualTo(1e-4f);
    }

    [Fact]
    public void A_timestep_count_that_fits_neither_rule_is_a_usage_error()
    {
        var golden = Golden.Load("unet_tiny");
        using var folder = new TemporaryModelFolder(golden.ConfigPath, golden.Weights, SafetensorsDType.F32);
        string input = Path.Combine(folder.Path, "input.safetensors");
        SafetensorsWriter.Write(input, [new("sample", golden.Sample)]);

        var run = DiffuseProcess.Run("unet", "--model", folder.Path, "--input", input, "--timestep", "1,2",
            "--out", Path.Combine(folder.Path, "o.safetensors"), "--device", "cpu");

        run.ExitCode.Should().Be(2);
        run.StandardError.Should().Contain("--timestep").And.Contain("3");
        File.Exists(Path.Combine(folder.Path, "o.safetensors")).Should().BeFalse();
    }

    [Fact]
    public void An_existing_output_is_kept_unless_forced()
    {
        var golden = Golden.Load("unet_tiny");
        using var folder = new TemporaryModelFolder(golden.ConfigPath, golden.Weights, SafetensorsDType.F32);
        string input = Path.Combine(folder.Path, "input.safetensors");
        string output = Path.Combine(folder.Path, "existing.safetensors");
        SafetensorsWriter.Write(input, [new("sample", golden.Sample)]);
        File.WriteAllText(output, "keep me");

        var run = DiffuseProcess.Run("unet", "--model", folder.Path, "--input", input, "--timestep", "10",
            "--out", output, "--device", "cpu");

        run.ExitCode.Should().Be(5);
        File.ReadAllText(output).Should().Be("keep me");
    }
}
