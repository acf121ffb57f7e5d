using System.Diagnostics;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>
/// <c>diffuse generate</c> as a user runs it, on the committed default model (weights/default), with few steps
/// so each run takes about a second.
/// </summary>
public sealed class GenerateEndToEndTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("diffuse-generate-").FullName;

    private static string DefaultModel => Path.Combine(RepositoryPaths.Root, "weights", "default");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("ddpm", "10")]
    [InlineData("ddim", "5")]
    [InlineData("dpm++2m", "5")]
    [InlineData("euler-a", "5")]
    public void Every_sampler_writes_a_png_and_the_tensor_it_shows(string scheduler, string steps)
    {
        string png = Path.Combine(_folder, "out.png"), tensor = Path.Combine(_folder, "out.safetensors");

        var run = DiffuseProcess.Run("generate", "--model", DefaultModel, "--scheduler", scheduler, "--steps", steps,
            "--batch", "3", "--seed", "11", "--device", "cpu", "--scale", "2", "--out", png, "--save-tensor", tensor);

        run.ExitCode.Should().Be(0, run.StandardError);
        using var file = SafetensorsFile.Open(tensor);
        var samples = file.ReadTensor("sample");
        samples.Shape.Should().Equal(3, 1, 32, 32);
        samples.Data.Should().OnlyContain(v => float.IsFinite(v));
        File.ReadAllBytes(png).Should().Equal(Png.Encode(ImageGrid.FromSamples(samples, scale: 2)));
        Directory.GetFiles(_folder).Should().HaveCount(2, "no temporary files are left behind");
    }

    [Fact]
    public void The_same_seed_gives_the_same_images_and_the_noise_file_reproduces_them()
    {
        string first = Path.Combine(_folder, "a.safetensors"), second = Path.Combine(_folder, "b.safetensors");
        string[] common = ["generate", "--model", DefaultModel, "--scheduler", "ddim", "--steps", "4", "--batch", "2", "--device", "cpu"];

        DiffuseProcess.Run([.. common, "--seed", "5", "--out", Path.Combine(_folder, "a.png"), "--save-tensor", first]).ExitCode.Should().Be(0);
        DiffuseProcess.Run([.. common, "--seed", "5", "--out", Path.Combine(_folder, "b.png"), "--save-tensor", second]).ExitCode.Should().Be(0);

        using var a = SafetensorsFile.Open(first);
        using var b = SafetensorsFile.Open(second);
        a.ReadFloat32("sample").Should().Equal(b.ReadFloat32("sample"));
    }

    /// <summary>The build copies weights/default beside the binary, so a published diffuse needs no checkout.</summary>
    [Fact]
    public void Without_model_the_default_model_beside_the_binary_is_used()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, "default-model");
        File.Exists(Path.Combine(beside, "unet", "diffusion_pytorch_model.safetensors")).Should().BeTrue();
        string png = Path.Combine(_folder, "default.png");

        var run = DiffuseProcess.Run("generate", "--steps", "2", "--batch", "2", "--seed", "1", "--device", "cpu", "--out", png);

        run.ExitCode.Should().Be(0, run.StandardError);
        File.Exists(png).Should().BeTrue();
    }

    [Fact]
    public void Ctrl_c_exits_with_130_and_leaves_no_file()
    {
        string png = Path.Combine(_folder, "never.png");
        var process = DiffuseProcess.Start("generate", "--model", DefaultModel, "--scheduler", "ddpm", "--steps", "1000",
            "--batch", "4", "--device", "cpu", "--out", png, "--save-tensor", Path.Combine(_folder, "never.safetensors"));
        // Wait until sampling has started (the first progress line), then interrupt as a terminal would.
        var stderr = new System.Text.StringBuilder();
        while (process.StandardError.ReadLine() is { } line)
        {
            stderr.AppendLine(line);
            if (line.StartsWith("step ", StringComparison.Ordinal)) break;
        }
        using (var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            kill.WaitForExit();

        var run = DiffuseProcess.Finish(process);

        run.ExitCode.Should().Be(130, stderr + run.StandardError);
        (stderr + run.StandardError).Should().Contain("cancelled");
        Directory.GetFiles(_folder).Should().BeEmpty();
    }
}
