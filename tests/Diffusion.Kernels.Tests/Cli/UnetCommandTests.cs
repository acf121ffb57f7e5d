using Diffusion.Kernels.IO;
using Diffusion.Kernels.Tests.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

public class UnetCommandTests
{
    [Fact]
    public void Diffuse_unet_reproduces_the_pytorch_output()
    {
        using var model = new TinyUnetFolder();
        string output = model.PathOf("output.safetensors");

        var run = model.Run(string.Join(',', model.Golden.Timesteps.Select(t => t.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
            output);

        run.ExitCode.Should().Be(0, run.StandardError);
        using var file = SafetensorsFile.Open(output);
        UNet2DParityTests.MaxAbsDifference(file.ReadTensor("sample"), model.Golden.Output).Should().BeLessThanOrEqualTo(1e-4f);
    }

    /// <summary>The GPU kernels, run by the command on the emulated device, held to the same PyTorch numbers.</summary>
    [Fact]
    public void Diffuse_unet_on_the_emulated_device_reproduces_the_pytorch_output()
    {
        using var model = new TinyUnetFolder();
        string output = model.PathOf("output.safetensors");

        var run = DiffuseProcess.Finish(model.Start(string.Join(',', model.Golden.Timesteps.Select(t => t.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
            output, device: "emulated"));

        run.ExitCode.Should().Be(0, run.StandardError);
        run.StandardError.Should().Contain("device: emulated, ILGPU CPU accelerator (very slow)");
        using var file = SafetensorsFile.Open(output);
        UNet2DParityTests.MaxAbsDifference(file.ReadTensor("sample"), model.Golden.Output).Should().BeLessThanOrEqualTo(1e-4f);
    }

    [Fact]
    public void A_timestep_count_that_fits_neither_rule_is_a_usage_error()
    {
        using var model = new TinyUnetFolder();
        string output = model.PathOf("o.safetensors");

        var run = model.Run("1,2", output);

        run.ExitCode.Should().Be(2);
        run.StandardError.Should().Contain("--timestep").And.Contain("3");
        File.Exists(output).Should().BeFalse();
    }

    [Fact]
    public void An_existing_output_is_kept_unless_forced()
    {
        using var model = new TinyUnetFolder();
        string output = model.PathOf("existing.safetensors");
        File.WriteAllText(output, "keep me");

        var run = model.Run("10", output);

        run.ExitCode.Should().Be(5);
        File.ReadAllText(output).Should().Be("keep me");
    }

    [Fact]
    public void Ctrl_c_exits_with_130_and_writes_no_output()
    {
        using var model = new TinyUnetFolder();
        string output = model.PathOf("never.safetensors");
        var process = model.Start("10", output, ["--repeat", "100000"]);
        // The device line comes before loading; interrupt once the forwards are under way, as a terminal would.
        var stderr = new System.Text.StringBuilder();
        while (process.StandardError.ReadLine() is { } line)
        {
            stderr.AppendLine(line);
            if (line.StartsWith("device:", StringComparison.Ordinal)) break;
        }
        Thread.Sleep(500);
        using (var kill = System.Diagnostics.Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            kill.WaitForExit();

        var run = DiffuseProcess.Finish(process);

        run.ExitCode.Should().Be(130, stderr + run.StandardError);
        File.Exists(output).Should().BeFalse();
    }

    /// <summary>The tiny golden U-Net in a temporary model folder, its input sample written beside it.</summary>
    private sealed class TinyUnetFolder : IDisposable
    {
        private readonly TemporaryModelFolder _folder;
        private readonly string _input;

        public TinyUnetFolder()
        {
            Golden = Golden.Load("unet_tiny");
            _folder = new TemporaryModelFolder(Golden.ConfigPath, Golden.Weights, SafetensorsDType.F32);
            _input = PathOf("input.safetensors");
            SafetensorsWriter.Write(_input, [new("sample", Golden.Sample)]);
        }

        public Golden Golden { get; }

        public string PathOf(string fileName) => Path.Combine(_folder.Path, fileName);

        /// <summary><c>diffuse unet</c> on the CPU with the golden input.</summary>
        public DiffuseProcess.Result Run(string timesteps, string output) => DiffuseProcess.Finish(Start(timesteps, output));

        public System.Diagnostics.Process Start(string timesteps, string output, string[]? more = null, string device = "cpu") =>
            DiffuseProcess.Start(["unet", "--model", _folder.Path, "--input", _input, "--timestep", timesteps, "--out", output, "--device", device, .. more ?? []]);

        public void Dispose() => _folder.Dispose();
    }
}
