namespace Diffusion.Kernels.Tests.Models;

/// <summary>Config JSON used by the model tests.</summary>
internal static class ModelJson
{
    /// <summary>google/ddpm-cifar10-32's config.json, as published.</summary>
    public const string Cifar10 = """
        {
          "_class_name": "UNet2DModel",
          "_diffusers_version": "0.0.4",
          "act_fn": "silu",
          "attention_head_dim": null,
          "block_out_channels": [128, 256, 256, 256],
          "center_input_sample": false,
          "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
          "downsample_padding": 0,
          "flip_sin_to_cos": false,
          "freq_shift": 1,
          "in_channels": 3,
          "layers_per_block": 2,
          "mid_block_scale_factor": 1,
          "norm_eps": 1e-06,
          "norm_num_groups": 32,
          "out_channels": 3,
          "sample_size": 32,
          "time_embedding_type": "positional",
          "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
        }
        """;

    /// <summary>A small model with attention at two levels, multi-head attention, and every kind of parameter.</summary>
    public const string Tiny = """
        {
          "_class_name": "UNet2DModel",
          "attention_head_dim": 8,
          "block_out_channels": [16, 24, 32],
          "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
          "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
          "layers_per_block": 1,
          "norm_num_groups": 4,
          "sample_size": 16,
          "some_future_field": {"nested": [1, 2, 3]}
        }
        """;

    /// <summary><paramref name="json"/> with one top-level field replaced (or added) with raw JSON.</summary>
    public static string With(string json, string field, string rawValue)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        node[field] = System.Text.Json.Nodes.JsonNode.Parse(rawValue);
        return node.ToJsonString();
    }

    public static string Without(string json, string field)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        node.Remove(field);
        return node.ToJsonString();
    }
}
