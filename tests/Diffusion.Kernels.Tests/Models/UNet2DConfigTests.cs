using Diffusion.Kernels.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

public class UNet2DConfigTests
{
    private const string Source = "/models/x/config.json";

    [Fact]
    public void Cifar10_config_parses_field_by_field()
    {
        var config = UNet2DConfig.Parse(ModelJson.Cifar10, Source);

        config.SampleSize.Should().Be(32);
        config.InChannels.Should().Be(3);
        config.OutChannels.Should().Be(3);
        config.BlockOutChannels.Should().Equal(128, 256, 256, 256);
        config.LayersPerBlock.Should().Be(2);
        config.DownBlockTypes.Should().Equal("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D");
        config.UpBlockTypes.Should().Equal("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D");
        config.AttentionHeadDim.Should().BeNull();
        config.NormNumGroups.Should().Be(32);
        config.NormEps.Should().Be(1e-6f);
        config.DownsamplePadding.Should().Be(0);
        config.FlipSinToCos.Should().BeFalse();
        config.FreqShift.Should().Be(1f);
        config.MidBlockScaleFactor.Should().Be(1f);
        config.CenterInputSample.Should().BeFalse();
        config.TimeEmbeddingDim.Should().Be(512);
        Enumerable.Range(0, 4).Select(config.DownBlockHasAttention).Should().Equal(false, true, false, false);
        Enumerable.Range(0, 4).Select(config.UpBlockHasAttention).Should().Equal(false, false, true, false);
        config.AttentionHeads(256).Should().Be(1, "attention_head_dim null means one head as wide as the layer");
    }

    [Fact]
    public void Absent_fields_take_diffusers_defaults()
    {
        var config = UNet2DConfig.Parse("{}", Source);

        config.SampleSize.Should().BeNull();
        config.InChannels.Should().Be(3);
        config.OutChannels.Should().Be(3);
        config.BlockOutChannels.Should().Equal(224, 448, 672, 896);
        config.DownBlockTypes.Should().Equal("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D");
        config.UpBlockTypes.Should().Equal("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D");
        config.LayersPerBlock.Should().Be(2);
        config.NormNumGroups.Should().Be(32);
        config.NormEps.Should().Be(1e-5f);
        config.AttentionHeadDim.Should().Be(8);
        config.AttentionHeads(448).Should().Be(56);
        config.FlipSinToCos.Should().BeTrue();
        config.FreqShift.Should().Be(0f);
        config.DownsamplePadding.Should().Be(1);
        config.MidBlockScaleFactor.Should().Be(1f);
        config.CenterInputSample.Should().BeFalse();
        config.ActFn.Should().Be("silu");
        config.TimeEmbeddingType.Should().Be("positional");
        config.AddAttention.Should().BeTrue();
    }

    [Fact]
    public void Unknown_fields_and_swish_are_accepted()
    {
        var config = UNet2DConfig.Parse(ModelJson.With(ModelJson.Tiny, "act_fn", "\"swish\""), Source);

        config.ActFn.Should().Be("silu");
        config.BlockOutChannels.Should().Equal(16, 24, 32);
    }

    [Fact]
    public void Sample_size_may_be_a_square_pair()
    {
        UNet2DConfig.Parse(ModelJson.With(ModelJson.Tiny, "sample_size", "[16, 16]"), Source).SampleSize.Should().Be(16);
    }

    public static TheoryData<string, string, string, string> Rejections => new()
    {
        // field, raw JSON value, the field the error names, a phrase of the problem
        { "in_channels", "\"3\"", "in_channels", "must be an integer" },
        { "in_channels", "3.5", "in_channels", "must be an integer" },
        { "in_channels", "null", "in_channels", "must be an integer" },
        { "out_channels", "0", "out_channels", "out of the supported range" },
        { "layers_per_block", "65", "layers_per_block", "out of the supported range" },
        { "block_out_channels", "[16, 1000000]", "block_out_channels", "out of the supported range" },
        { "block_out_channels", "[]", "block_out_channels", "has 0 entries" },
        { "block_out_channels", "16", "block_out_channels", "must be a list" },
        { "block_out_channels", "[16, 24]", "down_block_types", "has 3 entries but block_out_channels has 2" },
        { "up_block_types", "[\"AttnUpBlock2D\", \"UpBlock2D\"]", "up_block_types", "has 2 entries but block_out_channels has 3" },
        { "down_block_types", "[\"DownBlock2D\", \"CrossAttnDownBlock2D\", \"DownBlock2D\"]", "down_block_types", "'CrossAttnDownBlock2D' is not supported" },
        { "down_block_types", "[\"DownBlock2D\", \"UpBlock2D\", \"DownBlock2D\"]", "down_block_types", "'UpBlock2D' is not supported" },
        { "down_block_types", "[1, 2, 3]", "down_block_types", "must be a list of strings" },
        { "norm_num_groups", "5", "norm_num_groups", "5 does not divide the block channel count 16" },
        { "attention_head_dim", "5", "attention_head_dim", "does not divide the 24 channels" },
        { "attention_head_dim", "0", "attention_head_dim", "out of the supported range" },
        { "norm_eps", "0", "norm_eps", "finite positive number" },
        { "norm_eps", "\"1e-5\"", "norm_eps", "must be a number" },
        { "mid_block_scale_factor", "-1", "mid_block_scale_factor", "finite positive number" },
        { "freq_shift", "8", "freq_shift", "smaller than half" },
        { "downsample_padding", "2", "downsample_padding", "out of the supported range" },
        { "flip_sin_to_cos", "1", "flip_sin_to_cos", "true or false" },
        { "center_input_sample", "\"false\"", "center_input_sample", "true or false" },
        { "act_fn", "\"gelu\"", "act_fn", "'gelu' is not supported" },
        { "time_embedding_type", "\"fourier\"", "time_embedding_type", "'fourier' is not supported" },
        { "resnet_time_scale_shift", "\"scale_shift\"", "resnet_time_scale_shift", "'scale_shift' is not supported" },
        { "downsample_type", "\"resnet\"", "downsample_type", "'resnet' is not supported" },
        { "upsample_type", "\"resnet\"", "upsample_type", "'resnet' is not supported" },
        { "class_embed_type", "\"timestep\"", "class_embed_type", "not supported yet" },
        { "num_class_embeds", "10", "num_class_embeds", "not supported yet" },
        { "attn_norm_num_groups", "2", "attn_norm_num_groups", "not supported" },
        { "sample_size", "[16, 32]", "sample_size", "not square" },
        { "sample_size", "[16]", "sample_size", "[height, width] pair" },
        { "sample_size", "18", "sample_size", "not a multiple of 4" },
        { "sample_size", "-16", "sample_size", "out of the supported range" },
    };

    [Theory]
    [MemberData(nameof(Rejections))]
    public void Bad_values_are_refused_naming_file_field_and_problem(string field, string value, string namedField, string phrase)
    {
        var act = () => UNet2DConfig.Parse(ModelJson.With(ModelJson.Tiny, field, value), Source);

        act.Should().Throw<ModelConfigException>()
            .Where(e => e.FilePath == Source && e.Field == namedField && e.Message.Contains(Source)
                && e.Message.Contains(namedField) && e.Problem.Contains(phrase));
    }

    [Theory]
    [InlineData("not json at all", "not valid JSON")]
    [InlineData("[1, 2]", "must hold a JSON object")]
    [InlineData("{\"in_channels\": 3, \"in_channels\": 4}", "appears twice")]
    [InlineData("{\"norm_eps\": NaN}", "not valid JSON")]
    public void Malformed_json_is_refused(string json, string phrase)
    {
        var act = () => UNet2DConfig.Parse(json, Source);

        act.Should().Throw<ModelConfigException>().Where(e => e.Message.Contains(Source) && e.Problem.Contains(phrase));
    }

    [Fact]
    public void Load_reports_a_missing_file_and_an_lfs_pointer()
    {
        using var dir = new IO.TempDirectory();
        string absent = dir.File("config.json");
        var missing = () => UNet2DConfig.Load(absent);
        missing.Should().Throw<ModelConfigException>().Where(e => e.FilePath == absent && e.Problem == "does not exist");

        File.WriteAllText(absent, "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 10\n");
        var pointer = () => UNet2DConfig.Load(absent);
        pointer.Should().Throw<ModelConfigException>().Where(e => e.Problem.Contains("git lfs pull"));
    }
}
