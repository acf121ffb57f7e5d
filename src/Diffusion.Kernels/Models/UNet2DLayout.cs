namespace Diffusion.Kernels.Models;

/// <summary>
/// Every parameter a diffusers <c>UNet2DModel</c> has for a config, by its state-dict name and PyTorch shape,
/// in module order. The channel bookkeeping follows diffusers exactly: up-block resnets see the previous output
/// concatenated with a skip from the matching down block, so every one of them has a 1×1 shortcut.
/// </summary>
public static class UNet2DLayout
{
    public static IReadOnlyList<(string Name, int[] Shape)> ExpectedTensors(UNet2DConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var list = new List<(string, int[])>();
        var channels = config.BlockOutChannels;
        int levels = channels.Count;
        int temb = config.TimeEmbeddingDim;

        Conv(list, "conv_in", config.InChannels, channels[0], 3);
        Linear(list, "time_embedding.linear_1", channels[0], temb);
        Linear(list, "time_embedding.linear_2", temb, temb);

        int output = channels[0];
        for (int i = 0; i < levels; i++)
        {
            int input = output;
            output = channels[i];
            string prefix = $"down_blocks.{i}";
            for (int j = 0; j < config.LayersPerBlock; j++)
                Resnet(list, $"{prefix}.resnets.{j}", j == 0 ? input : output, output, temb);
            if (config.DownBlockHasAttention(i))
            {
                for (int j = 0; j < config.LayersPerBlock; j++)
                    Attention(list, $"{prefix}.attentions.{j}", output);
            }
            if (i < levels - 1) Conv(list, $"{prefix}.downsamplers.0.conv", output, output, 3);
        }

        int bottom = channels[levels - 1];
        Resnet(list, "mid_block.resnets.0", bottom, bottom, temb);
        if (config.AddAttention) Attention(list, "mid_block.attentions.0", bottom);
        Resnet(list, "mid_block.resnets.1", bottom, bottom, temb);

        output = bottom;
        for (int i = 0; i < levels; i++)
        {
            int previousOutput = output;
            output = channels[levels - 1 - i];
            // The skip feeding the last resnet of this block comes from one level further up the down path.
            int input = channels[Math.Max(levels - 2 - i, 0)];
            string prefix = $"up_blocks.{i}";
            int layers = config.LayersPerBlock + 1;
            for (int j = 0; j < layers; j++)
            {
                int skip = j == layers - 1 ? input : output;
                int residual = j == 0 ? previousOutput : output;
                Resnet(list, $"{prefix}.resnets.{j}", residual + skip, output, temb);
            }
            if (config.UpBlockHasAttention(i))
            {
                for (int j = 0; j < layers; j++)
                    Attention(list, $"{prefix}.attentions.{j}", output);
            }
            if (i < levels - 1) Conv(list, $"{prefix}.upsamplers.0.conv", output, output, 3);
        }

        Norm(list, "conv_norm_out", channels[0]);
        Conv(list, "conv_out", channels[0], config.OutChannels, 3);
        return list;
    }

    public static long ParameterCount(UNet2DConfig config) =>
        ExpectedTensors(config).Sum(t => HostTensor.Count(t.Shape));

    private static void Resnet(List<(string, int[])> list, string prefix, int input, int output, int temb)
    {
        Norm(list, $"{prefix}.norm1", input);
        Conv(list, $"{prefix}.conv1", input, output, 3);
        Linear(list, $"{prefix}.time_emb_proj", temb, output);
        Norm(list, $"{prefix}.norm2", output);
        Conv(list, $"{prefix}.conv2", output, output, 3);
        if (input != output) Conv(list, $"{prefix}.conv_shortcut", input, output, 1);
    }

    /// <summary>Heads split the channels, so q, k, v and the output projection are all C × C whatever the head count.</summary>
    private static void Attention(List<(string, int[])> list, string prefix, int channels)
    {
        Norm(list, $"{prefix}.group_norm", channels);
        Linear(list, $"{prefix}.to_q", channels, channels);
        Linear(list, $"{prefix}.to_k", channels, channels);
        Linear(list, $"{prefix}.to_v", channels, channels);
        Linear(list, $"{prefix}.to_out.0", channels, channels);
    }

    private static void Conv(List<(string, int[])> list, string name, int input, int output, int kernel)
    {
        list.Add(($"{name}.weight", [output, input, kernel, kernel]));
        list.Add(($"{name}.bias", [output]));
    }

    private static void Linear(List<(string, int[])> list, string name, int input, int output)
    {
        list.Add(($"{name}.weight", [output, input]));
        list.Add(($"{name}.bias", [output]));
    }

    private static void Norm(List<(string, int[])> list, string name, int channels)
    {
        list.Add(($"{name}.weight", [channels]));
        list.Add(($"{name}.bias", [channels]));
    }
}
