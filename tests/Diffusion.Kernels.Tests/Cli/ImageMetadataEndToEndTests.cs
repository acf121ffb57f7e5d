using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>
/// The PNG metadata as a user meets it, through the real <c>diffuse</c> process: generate writes it, info prints
/// it, generate --from runs the image again, and --rng picks the stream the seed drives.
/// </summary>
public sealed class ImageMetadataEndToEndTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("diffuse-metadata-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Generate_records_its_parameters_info_prints_them_and_from_runs_them_again()
    {
        var first = Generate("first", "--scheduler", "ddim", "--eta", "0.5", "--steps", "3", "--batch", "2", "--seed", "11", "--rng", "splitmix");
        var metadata = ImageMetadata.FromTextChunks(PngText.Read(Png("first")), "first.png")!;
        metadata.Should().BeEquivalentTo(new
        {
            Model = RepositoryPaths.DefaultModel, Scheduler = "ddim", Steps = 3, Eta = 0.5, Seed = 11UL, Rng = "splitmix", NoiseFile = (string?)null,
            Width = 32, Height = 32, BatchSize = 2, BatchIndex = (int?)null, Grid = ((int, int)?)(2, 1), Scale = 1,
        });

        var info = DiffuseProcess.Run("info", Png("first"));
        info.ExitCode.Should().Be(0, info.StandardError);
        info.StandardOutput.Should().Contain("Parameters  Steps: 3, Sampler: DDIM, Eta: 0.5, Seed: 11, RNG: splitmix, Size: 32x32")
            .And.Contain("a 2×1 grid of the batch of 2").And.Contain($"Re-run      diffuse generate --from {Png("first")}");

        Rerun("again", "--from", Png("first")).Should().Equal(first, "every parameter comes back from the image");
        Rerun("torch", "--from", Png("first"), "--rng", "torch").Should().NotEqual(first, "an option given on the command line wins");
    }

    [Fact]
    public void The_default_rng_is_torch_and_splitmix_is_another_stream()
    {
        var torch = Generate("torch", "--steps", "2", "--batch", "1", "--seed", "5");
        ImageMetadata.FromTextChunks(PngText.Read(Png("torch")), "torch.png")!.Rng.Should().Be("torch");
        var splitmix = Generate("splitmix", "--steps", "2", "--batch", "1", "--seed", "5", "--rng", "splitmix");
        splitmix.Should().NotEqual(torch);
        var bad = DiffuseProcess.Run("generate", "--model", RepositoryPaths.DefaultModel, "--rng", "numpy", "--out", Png("bad"));
        bad.ExitCode.Should().Be(2);
        bad.StandardError.Should().Contain("--rng: 'numpy' is not one of torch, splitmix");
    }

    [Fact]
    public void A_damaged_image_is_refused_in_one_line_by_info_and_by_from()
    {
        Generate("good", "--steps", "2", "--batch", "1", "--seed", "1");
        var bytes = File.ReadAllBytes(Png("good"));
        int text = bytes.AsSpan().IndexOf("tEXt"u8);
        bytes[text + 12] ^= 0x01; // inside the parameters chunk: its CRC no longer matches
        string damaged = Path.Combine(_folder, "damaged.png");
        File.WriteAllBytes(damaged, bytes);

        foreach (var run in new[] { DiffuseProcess.Run("info", damaged), DiffuseProcess.Run("generate", "--from", damaged, "--out", Png("x")) })
        {
            run.ExitCode.Should().Be(4, run.StandardError);
            run.StandardError.Trim().Should().Be($"diffuse: {damaged}: tEXt chunk at byte 33 fails its CRC check (the file is damaged)");
        }
        File.Exists(Png("x")).Should().BeFalse();

        string plain = Path.Combine(_folder, "plain.png");
        File.WriteAllBytes(plain, global::Diffusion.Kernels.Imaging.Png.Encode(new Image8(1, 1, 1, [7])));
        var from = DiffuseProcess.Run("generate", "--from", plain, "--out", Png("y"));
        from.ExitCode.Should().Be(2);
        from.StandardError.Should().Contain("holds no diffuse metadata");
    }

    private string Png(string name) => Path.Combine(_folder, name + ".png");

    private float[] Generate(string name, params string[] options) =>
        Run(name, ["--model", RepositoryPaths.DefaultModel, "--device", "cpu", "--scale", "1", .. options]);

    private float[] Rerun(string name, params string[] options) => Run(name, ["--device", "cpu", .. options]);

    private float[] Run(string name, string[] options)
    {
        string tensor = Path.Combine(_folder, name + ".safetensors");
        var run = DiffuseProcess.Run(["generate", "--out", Png(name), "--save-tensor", tensor, .. options]);
        run.ExitCode.Should().Be(0, run.StandardError);
        using var file = SafetensorsFile.Open(tensor);
        return file.ReadFloat32("sample");
    }
}
