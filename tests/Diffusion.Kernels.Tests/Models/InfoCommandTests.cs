using Diffusion.Cli;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

public class InfoCommandTests
{
    private static readonly UNet2DConfig Tiny = UNet2DConfig.Parse(ModelJson.Tiny, "tiny/config.json");

    private static (int Code, string Output, string Error) Info(string path)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = InfoCommand.Run(path, output, error, cancellationToken: TestContext.Current.CancellationToken);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Describes_a_pipeline_folder()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("model_index.json"), "{}");
        CheckpointFixture.WriteUNetFolder(dir.File("unet"), ModelJson.Tiny, CheckpointFixture.RandomWeights(Tiny, 1), SafetensorsDType.F16);
        Directory.CreateDirectory(dir.File("scheduler"));
        File.WriteAllText(Path.Combine(dir.Path, "scheduler", "scheduler_config.json"),
            "{\"_class_name\": \"DDPMScheduler\", \"beta_schedule\": \"linear\", \"num_train_timesteps\": 1000, \"trained_betas\": null}");

        var (code, output, error) = Info(dir.Path);

        TestContext.Current.TestOutputHelper?.WriteLine(output);
        code.Should().Be(0);
        error.Should().BeEmpty();
        long parameters = UNet2DLayout.ParameterCount(Tiny);
        parameters.Should().BeGreaterThan(1000);
        output.Should().Contain($"Parameters  {parameters:N0}").And.Contain(",")
            .And.Contain($"F16 ({UNet2DLayout.ExpectedTensors(Tiny).Count} tensors)")
            .And.Contain("16×16 samples")
            .And.Contain("AttnDownBlock2D  8×8")
            .And.Contain("attention 3 heads × 8")
            .And.Contain("attention 4 heads × 8")
            .And.Contain("downsample to 4×4")
            .And.Contain("beta_schedule = linear")
            .And.Contain("num_train_timesteps = 1000")
            .And.Contain("CPU         ").And.Contain("(tier ")
            .And.Contain(Path.Combine(dir.Path, "unet", "diffusion_pytorch_model.safetensors"));
    }

    [Fact]
    public void A_broken_model_is_one_error_and_the_bad_model_exit_code()
    {
        using var dir = new TempDirectory();
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, CheckpointFixture.RandomWeights(Tiny, 2));
        File.WriteAllBytes(dir.File("diffusion_pytorch_model.safetensors"), [1, 2, 3]);

        var (code, output, error) = Info(dir.Path);

        code.Should().Be(3);
        output.Should().BeEmpty();
        error.Trim().Split('\n').Should().ContainSingle();
        error.Should().StartWith("diffuse: ").And.Contain(dir.File("diffusion_pytorch_model.safetensors")).And.Contain("shorter than");
    }

    [Fact]
    public void A_missing_folder_is_the_bad_model_exit_code()
    {
        using var dir = new TempDirectory();

        var (code, _, error) = Info(dir.File("nope"));

        code.Should().Be(3);
        error.Should().Contain("does not exist");
    }
}
