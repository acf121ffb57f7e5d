using System.Diagnostics;
using Diffusion.Kernels.Backends.Gpu;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Sampling;
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

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("ddpm", "10")]
    [InlineData("ddim", "5")]
    [InlineData("dpm++2m", "5")]
    [InlineData("euler-a", "5")]
    public void Every_sampler_writes_a_png_and_the_tensor_it_shows(string scheduler, string steps)
    {
        string png = Path.Combine(_folder, "out.png"), tensor = Path.Combine(_folder, "out.safetensors");

        var run = DiffuseProcess.Run("generate", "--model", RepositoryPaths.DefaultModel, "--scheduler", scheduler, "--steps", steps,
            "--batch", "3", "--seed", "11", "--device", "cpu", "--scale", "2", "--out", png, "--save-tensor", tensor);

        run.ExitCode.Should().Be(0, run.StandardError);
        using var file = SafetensorsFile.Open(tensor);
        var samples = file.ReadTensor("sample");
        samples.Shape.Should().Equal(3, 1, 32, 32);
        samples.Data.Should().OnlyContain(v => float.IsFinite(v));
        File.ReadAllBytes(png).Should().Equal(Png.Encode(ImageGrid.FromSamples(samples, scale: 2), PngText.Read(png)), "the PNG shows the tensor (and carries its metadata)");
        Directory.GetFiles(_folder).Should().HaveCount(2, "no temporary files are left behind");
    }

    [Fact]
    public void The_same_seed_gives_the_same_images_and_the_noise_file_reproduces_them()
    {
        // The seeded noise of a 2×1×32×32 run, torch.randn((2, 1, 32, 32), generator=torch.manual_seed(5)) as the
        // default --rng torch draws it; DDIM's initial σ is 1, so x_T is this tensor.
        string noise = Path.Combine(_folder, "noise.safetensors");
        SafetensorsWriter.Write(noise, [new("sample", new HostTensor([2, 1, 32, 32], new TorchCpuGenerator(5).Randn(2 * 32 * 32)))]);

        var seeded = Generate("a", "--seed", "5");
        Generate("b", "--seed", "5").Should().Equal(seeded);
        // Another seed, so only the noise file can make the result match: DDIM at η = 0 draws nothing else.
        Generate("c", "--seed", "6", "--noise", noise).Should().Equal(seeded);
    }

    [Fact]
    public void Eta_reaches_the_ddim_sampler_and_stays_seeded()
    {
        var deterministic = Generate("eta0", "--seed", "5", "--eta", "0");
        var stochastic = Generate("eta1", "--seed", "5", "--eta", "1");

        Generate("eta1-again", "--seed", "5", "--eta", "1").Should().Equal(stochastic);
        // If --eta were dropped on the way, η = 1 would run as η = 0 and give the same samples.
        stochastic.Zip(deterministic).Count(p => p.First != p.Second).Should().BeGreaterThan(stochastic.Length / 2);
    }

    /// <summary>Auto must say what it picked, so a timing or a failure is never blamed on the wrong device.</summary>
    [Fact]
    public void Device_auto_names_the_device_it_chose()
    {
        bool gpu = GpuBackend.TryCreateCuda(out var cuda, out _);
        cuda?.Dispose();

        var run = DiffuseProcess.Run("generate", "--model", RepositoryPaths.DefaultModel, "--steps", "1", "--batch", "1", "--seed", "1",
            "--device", "auto", "--scale", "1", "--out", Path.Combine(_folder, "auto.png"));

        run.ExitCode.Should().Be(0, run.StandardError);
        run.StandardError.Split('\n').Should().ContainSingle(line => line.StartsWith("device: ", StringComparison.Ordinal))
            .Which.Should().StartWith(gpu ? "device: cuda, " : "device: cpu, ");
    }

    /// <summary>Runs a short batch-2 DDIM generation and returns the samples it saved with --save-tensor.</summary>
    private float[] Generate(string name, params string[] options)
    {
        string tensor = Path.Combine(_folder, name + ".safetensors");
        var run = DiffuseProcess.Run(["generate", "--model", RepositoryPaths.DefaultModel, "--scheduler", "ddim", "--steps", "4", "--batch", "2",
            "--device", "cpu", "--scale", "1", "--out", Path.Combine(_folder, name + ".png"), "--save-tensor", tensor, .. options]);
        run.ExitCode.Should().Be(0, run.StandardError);
        using var file = SafetensorsFile.Open(tensor);
        return file.ReadFloat32("sample");
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
        var process = DiffuseProcess.Start("generate", "--model", RepositoryPaths.DefaultModel, "--scheduler", "ddpm", "--steps", "1000",
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
