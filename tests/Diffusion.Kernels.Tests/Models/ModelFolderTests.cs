using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

public class ModelFolderTests
{
    private static readonly UNet2DConfig Tiny = UNet2DConfig.Parse(ModelJson.Tiny, "tiny/config.json");

    private static void WriteUNet(string directory) =>
        CheckpointFixture.WriteUNetFolder(directory, ModelJson.Tiny, CheckpointFixture.RandomWeights(Tiny, 1));

    [Fact]
    public void UNet_folder_opens_with_its_config_and_weights()
    {
        using var dir = new TempDirectory();
        WriteUNet(dir.Path);

        var folder = ModelFolder.Open(dir.Path);

        folder.RootPath.Should().Be(dir.Path);
        folder.UNetDirectory.Should().Be(dir.Path);
        folder.ConfigPath.Should().Be(dir.File("config.json"));
        folder.WeightsPath.Should().Be(dir.File("diffusion_pytorch_model.safetensors"));
        folder.SchedulerConfigPath.Should().BeNull();
        folder.Config.Should().BeEquivalentTo(Tiny);
    }

    [Fact]
    public void Pipeline_folder_finds_its_unet_and_scheduler()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("model_index.json"), "{\"_class_name\": \"DDPMPipeline\"}");
        WriteUNet(dir.File("unet"));
        Directory.CreateDirectory(dir.File("scheduler"));
        string scheduler = Path.Combine(dir.Path, "scheduler", "scheduler_config.json");
        File.WriteAllText(scheduler, "{\"num_train_timesteps\": 1000}");

        var folder = ModelFolder.Open(dir.Path);
        var fromUNet = ModelFolder.Open(dir.File("unet"));
        var fromConfig = ModelFolder.Open(Path.Combine(dir.Path, "unet", "config.json"));

        folder.RootPath.Should().Be(dir.Path);
        folder.UNetDirectory.Should().Be(dir.File("unet"));
        folder.WeightsPath.Should().Be(Path.Combine(dir.Path, "unet", "diffusion_pytorch_model.safetensors"));
        folder.SchedulerConfigPath.Should().Be(scheduler);
        fromUNet.SchedulerConfigPath.Should().Be(scheduler);
        fromConfig.UNetDirectory.Should().Be(dir.File("unet"));
        fromConfig.SchedulerConfigPath.Should().Be(scheduler);
    }

    [Fact]
    public void Flat_pipeline_keeps_the_scheduler_config_beside_the_unet()
    {
        using var dir = new TempDirectory();
        WriteUNet(dir.Path);
        File.WriteAllText(dir.File("model_index.json"), "{}");
        File.WriteAllText(dir.File("scheduler_config.json"), "{}");

        ModelFolder.Open(dir.Path).SchedulerConfigPath.Should().Be(dir.File("scheduler_config.json"));
    }

    [Fact]
    public void Bin_only_folder_says_only_safetensors_is_supported()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), ModelJson.Tiny);
        File.WriteAllBytes(dir.File("diffusion_pytorch_model.bin"), [1, 2, 3]);

        var act = () => ModelFolder.Open(dir.Path);

        act.Should().Throw<ModelConfigException>().Where(e => e.Message.Contains(dir.Path) && e.Problem.Contains("only safetensors is supported"));
    }

    [Fact]
    public void Half_precision_variant_is_used_when_it_is_the_only_weights()
    {
        using var dir = new TempDirectory();
        WriteUNet(dir.Path);
        File.Move(dir.File("diffusion_pytorch_model.safetensors"), dir.File("diffusion_pytorch_model.fp16.safetensors"));

        ModelFolder.Open(dir.Path).WeightsPath.Should().Be(dir.File("diffusion_pytorch_model.fp16.safetensors"));
    }

    [Fact]
    public void Missing_pieces_are_named()
    {
        using var dir = new TempDirectory();
        var nothing = () => ModelFolder.Open(dir.File("absent"));
        nothing.Should().Throw<ModelConfigException>().Where(e => e.Problem == "does not exist");

        var empty = () => ModelFolder.Open(dir.Path);
        empty.Should().Throw<ModelConfigException>().Where(e => e.Problem.Contains("not a diffusers model folder"));

        File.WriteAllText(dir.File("model_index.json"), "{}");
        var noUNet = () => ModelFolder.Open(dir.Path);
        noUNet.Should().Throw<ModelConfigException>().Where(e => e.Problem.Contains("pipeline folder without a UNet"));

        File.WriteAllText(dir.File("config.json"), ModelJson.Tiny);
        var noWeights = () => ModelFolder.Open(dir.Path);
        noWeights.Should().Throw<ModelConfigException>().Where(e => e.FilePath == dir.File("diffusion_pytorch_model.safetensors") && e.Problem == "does not exist");

        var otherFile = () => ModelFolder.Open(dir.File("model_index.json"));
        otherFile.Should().Throw<ModelConfigException>().Where(e => e.Problem.Contains("is a file"));
    }

    [Fact]
    public void Bad_config_in_a_folder_is_reported_with_its_path()
    {
        using var dir = new TempDirectory();
        WriteUNet(dir.Path);
        File.WriteAllText(dir.File("config.json"), ModelJson.With(ModelJson.Tiny, "norm_num_groups", "7"));

        var act = () => ModelFolder.Open(dir.Path);

        act.Should().Throw<ModelConfigException>().Where(e => e.FilePath == dir.File("config.json") && e.Field == "norm_num_groups");
    }
}
