using Diffusion.Kernels.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

public class UNet2DLayoutTests
{
    [Fact]
    public void Cifar10_model_has_35_746_307_parameters()
    {
        var config = UNet2DConfig.Parse(ModelJson.Cifar10, "cifar10/config.json");

        UNet2DLayout.ParameterCount(config).Should().Be(35_746_307);
    }

    [Fact]
    public void Names_are_unique_and_shapes_follow_diffusers_channel_bookkeeping()
    {
        var config = UNet2DConfig.Parse(ModelJson.Cifar10, "cifar10/config.json");
        var tensors = UNet2DLayout.ExpectedTensors(config).ToDictionary(t => t.Name, t => t.Shape);

        tensors.Should().HaveCount(UNet2DLayout.ExpectedTensors(config).Count);
        tensors["conv_in.weight"].Should().Equal(128, 3, 3, 3);
        tensors["time_embedding.linear_1.weight"].Should().Equal(512, 128);
        tensors["time_embedding.linear_2.weight"].Should().Equal(512, 512);
        tensors["down_blocks.1.resnets.0.conv_shortcut.weight"].Should().Equal(256, 128, 1, 1);
        tensors.Should().NotContainKey("down_blocks.1.resnets.1.conv_shortcut.weight");
        tensors["down_blocks.1.attentions.1.to_out.0.weight"].Should().Equal(256, 256);
        tensors["down_blocks.2.downsamplers.0.conv.weight"].Should().Equal(256, 256, 3, 3);
        tensors.Should().NotContainKey("down_blocks.3.downsamplers.0.conv.weight");
        tensors.Should().NotContainKey("down_blocks.0.attentions.0.to_q.weight");
        tensors["mid_block.attentions.0.group_norm.weight"].Should().Equal(256);
        // Up block 3 (128 channels): resnet 0 sees 256 from below + a 128 skip; resnet 2's skip is conv_in's 128.
        tensors["up_blocks.3.resnets.0.conv1.weight"].Should().Equal(128, 384, 3, 3);
        tensors["up_blocks.3.resnets.2.conv_shortcut.weight"].Should().Equal(128, 256, 1, 1);
        // Up block 2 (256 channels, attention): resnet 2's skip is down block 0's 128-channel output.
        tensors["up_blocks.2.resnets.2.norm1.weight"].Should().Equal(384);
        tensors["up_blocks.2.resnets.0.conv_shortcut.weight"].Should().Equal(256, 512, 1, 1);
        tensors["up_blocks.2.attentions.2.to_k.bias"].Should().Equal(256);
        tensors.Should().NotContainKey("up_blocks.3.upsamplers.0.conv.weight");
        tensors["up_blocks.0.upsamplers.0.conv.weight"].Should().Equal(256, 256, 3, 3);
        tensors["conv_out.weight"].Should().Equal(3, 128, 3, 3);
    }

    [Fact]
    public void No_mid_attention_without_add_attention()
    {
        var with = UNet2DConfig.Parse(ModelJson.Tiny, "tiny/config.json");
        var without = with with { AddAttention = false };

        UNet2DLayout.ExpectedTensors(without).Select(t => t.Name).Should().NotContain(n => n.StartsWith("mid_block.attentions"));
        (UNet2DLayout.ParameterCount(with) - UNet2DLayout.ParameterCount(without)).Should().Be(2 * 32 + 4 * (32 * 32 + 32));
    }
}
