using System.Text;
using System.Text.Json;
using Diffusion.Kernels.IO;

namespace Diffusion.Kernels.Models;

/// <summary>
/// The architecture of a diffusers <c>UNet2DModel</c>, read from its <c>config.json</c>. Property defaults are
/// diffusers' own constructor defaults, so a config that leaves a field out means what it means to diffusers.
/// Only what our U-Net implements is accepted; anything else is refused by <see cref="Parse"/> with the field
/// and value named, rather than silently computing something different.
/// </summary>
public sealed record UNet2DConfig
{
    public const int MaxChannels = 65536;
    public const int MaxLayersPerBlock = 64;
    public const int MaxLevels = 16;

    public static readonly IReadOnlyList<string> SupportedDownBlocks = ["DownBlock2D", "AttnDownBlock2D"];
    public static readonly IReadOnlyList<string> SupportedUpBlocks = ["UpBlock2D", "AttnUpBlock2D"];

    /// <summary>Height and width of the trained images; null when the config does not say.</summary>
    public int? SampleSize { get; init; }

    public int InChannels { get; init; } = 3;

    public int OutChannels { get; init; } = 3;

    public IReadOnlyList<int> BlockOutChannels { get; init; } = [224, 448, 672, 896];

    public int LayersPerBlock { get; init; } = 2;

    public IReadOnlyList<string> DownBlockTypes { get; init; } = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"];

    public IReadOnlyList<string> UpBlockTypes { get; init; } = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"];

    public int NormNumGroups { get; init; } = 32;

    public float NormEps { get; init; } = 1e-5f;

    /// <summary>Channels per attention head; null means one head as wide as the block.</summary>
    public int? AttentionHeadDim { get; init; } = 8;

    public bool FlipSinToCos { get; init; } = true;

    public float FreqShift { get; init; }

    /// <summary>Padding of the stride-2 downsampling conv: 1 pads all sides, 0 pads only right and bottom.</summary>
    public int DownsamplePadding { get; init; } = 1;

    public float MidBlockScaleFactor { get; init; } = 1f;

    public bool CenterInputSample { get; init; }

    /// <summary>Always "silu" once parsed: diffusers' "swish" is the same function.</summary>
    public string ActFn { get; init; } = "silu";

    public string TimeEmbeddingType { get; init; } = "positional";

    public bool AddAttention { get; init; } = true;

    /// <summary>Width of the time embedding: four times the first block's channels.</summary>
    public int TimeEmbeddingDim => BlockOutChannels[0] * 4;

    public bool DownBlockHasAttention(int i) => DownBlockTypes[i] == "AttnDownBlock2D";

    public bool UpBlockHasAttention(int i) => UpBlockTypes[i] == "AttnUpBlock2D";

    /// <summary>Heads of an attention layer over <paramref name="channels"/> channels.</summary>
    public int AttentionHeads(int channels) => AttentionHeadDim is int d ? channels / d : 1;

    /// <summary>Reads and checks a config.json.</summary>
    public static UNet2DConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(ConfigFiles.ReadText(path), path);
    }

    /// <summary>Parses config JSON; <paramref name="sourcePath"/> names the file in error messages.</summary>
    public static UNet2DConfig Parse(string json, string sourcePath)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourcePath);
        using var document = ConfigFiles.ParseObject(json, sourcePath);
        try
        {
            return FromFields(new ConfigFields(document.RootElement, sourcePath), sourcePath);
        }
        catch (InvalidOperationException e)
        {
            // Valid JSON can still escape a lone UTF-16 surrogate ("\ud800"), which no .NET string may hold.
            throw new ModelConfigException(sourcePath, null, "holds a string that is not valid Unicode", e);
        }
    }

    private static UNet2DConfig FromFields(ConfigFields fields, string sourcePath)
    {

        var config = new UNet2DConfig();
        config = config with
        {
            SampleSize = fields.SampleSize("sample_size"),
            InChannels = fields.Int("in_channels", config.InChannels, 1, MaxChannels),
            OutChannels = fields.Int("out_channels", config.OutChannels, 1, MaxChannels),
            BlockOutChannels = fields.IntList("block_out_channels", config.BlockOutChannels, 1, MaxChannels, MaxLevels),
            LayersPerBlock = fields.Int("layers_per_block", config.LayersPerBlock, 1, MaxLayersPerBlock),
            DownBlockTypes = fields.StringList("down_block_types", config.DownBlockTypes, SupportedDownBlocks, MaxLevels),
            UpBlockTypes = fields.StringList("up_block_types", config.UpBlockTypes, SupportedUpBlocks, MaxLevels),
            NormNumGroups = fields.Int("norm_num_groups", config.NormNumGroups, 1, MaxChannels),
            NormEps = fields.Float("norm_eps", config.NormEps, positive: true),
            AttentionHeadDim = fields.NullableInt("attention_head_dim", config.AttentionHeadDim, 1, MaxChannels),
            FlipSinToCos = fields.Bool("flip_sin_to_cos", config.FlipSinToCos),
            FreqShift = fields.Float("freq_shift", config.FreqShift, positive: false),
            DownsamplePadding = fields.Int("downsample_padding", config.DownsamplePadding, 0, 1),
            MidBlockScaleFactor = fields.Float("mid_block_scale_factor", config.MidBlockScaleFactor, positive: true),
            CenterInputSample = fields.Bool("center_input_sample", config.CenterInputSample),
            ActFn = fields.Choice("act_fn", config.ActFn, ["silu", "swish"]).Replace("swish", "silu", StringComparison.Ordinal),
            TimeEmbeddingType = fields.Choice("time_embedding_type", config.TimeEmbeddingType, ["positional"]),
            AddAttention = fields.Bool("add_attention", config.AddAttention),
        };
        fields.Choice("resnet_time_scale_shift", "default", ["default"]);
        fields.Choice("downsample_type", "conv", ["conv"]);
        fields.Choice("upsample_type", "conv", ["conv"]);
        fields.MustBeNull("class_embed_type", "class-conditional models are not supported yet");
        fields.MustBeNull("num_class_embeds", "class-conditional models are not supported yet");
        int? attentionGroups = fields.NullableInt("attn_norm_num_groups", null, 1, MaxChannels);
        if (attentionGroups is int g && g != config.NormNumGroups)
            throw new ModelConfigException(sourcePath, "attn_norm_num_groups",
                $"{g} differs from norm_num_groups ({config.NormNumGroups}); a separate attention group count is not supported");

        config.CheckConsistency(sourcePath);
        return config;
    }

    /// <summary>Checks that the fields fit together; each failure names the field a user would change.</summary>
    private void CheckConsistency(string path)
    {
        int levels = BlockOutChannels.Count;
        if (DownBlockTypes.Count != levels)
            throw new ModelConfigException(path, "down_block_types", $"has {DownBlockTypes.Count} entries but block_out_channels has {levels}");
        if (UpBlockTypes.Count != levels)
            throw new ModelConfigException(path, "up_block_types", $"has {UpBlockTypes.Count} entries but block_out_channels has {levels}");

        foreach (int c in BlockOutChannels)
        {
            if (c % NormNumGroups != 0)
                throw new ModelConfigException(path, "norm_num_groups", $"{NormNumGroups} does not divide the block channel count {c}");
        }

        if (AttentionHeadDim is int d)
        {
            foreach (int c in AttentionChannels())
            {
                if (c % d != 0)
                    throw new ModelConfigException(path, "attention_head_dim", $"{d} does not divide the {c} channels of an attention layer");
            }
        }

        if (FreqShift >= BlockOutChannels[0] / 2)
            throw new ModelConfigException(path, "freq_shift",
                $"{FreqShift} must be smaller than half the first block's channels ({BlockOutChannels[0] / 2}) for the sinusoid frequencies to be finite");

        int factor = 1 << (levels - 1);
        if (SampleSize is int size && size % factor != 0)
            throw new ModelConfigException(path, "sample_size", $"{size} is not a multiple of {factor}, which {levels} U-Net levels need");
    }

    /// <summary>Channel counts of every attention layer: down blocks, the mid block, and up blocks.</summary>
    internal IEnumerable<int> AttentionChannels()
    {
        int levels = BlockOutChannels.Count;
        for (int i = 0; i < levels; i++)
        {
            if (DownBlockHasAttention(i)) yield return BlockOutChannels[i];
        }
        if (AddAttention) yield return BlockOutChannels[levels - 1];
        for (int i = 0; i < levels; i++)
        {
            if (UpBlockHasAttention(i)) yield return BlockOutChannels[levels - 1 - i];
        }
    }
}

/// <summary>
/// Reading the small JSON files of a diffusers folder (the UNet's config.json, scheduler_config.json) with one
/// size limit, counted as the bytes arrive, and typed errors.
/// </summary>
public static class ConfigFiles
{
    /// <summary>A diffusers config is a few kilobytes; anything near this is not one.</summary>
    public const long MaxConfigBytes = 16 << 20;

    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 16 };

    public static string ReadText(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try
        {
            bytes = InputFile.ReadAllBytes(path, MaxConfigBytes, "a config file is a few kilobytes, so this is not one");
        }
        catch (UnusableFileException e)
        {
            throw new ModelConfigException(path, null, e.Problem, e);
        }
        string text;
        try
        {
            // A byte-order mark is legal in UTF-8 text and means nothing; StreamReader used to skip it for us.
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes).TrimStart('\uFEFF');
        }
        catch (DecoderFallbackException e)
        {
            throw new ModelConfigException(path, null, "is not UTF-8 text", e);
        }
        if (text.StartsWith("version https://git-lfs", StringComparison.Ordinal))
            throw new ModelConfigException(path, null, "is a Git LFS pointer: the real file was not downloaded (run 'git lfs pull' in the model repository)");
        return text;
    }

    public static JsonDocument ParseObject(string json, string path)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, Options);
        }
        catch (JsonException e)
        {
            throw new ModelConfigException(path, null, $"is not valid JSON ({e.Message})", e);
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            var kind = document.RootElement.ValueKind;
            document.Dispose();
            throw new ModelConfigException(path, null, $"must hold a JSON object, not {kind}");
        }
        return document;
    }
}

/// <summary>Typed access to config fields; every wrong type or value names the field.</summary>
internal sealed class ConfigFields
{
    private readonly Dictionary<string, JsonElement> _fields = new(StringComparer.Ordinal);
    private readonly string _path;

    public ConfigFields(JsonElement root, string path)
    {
        _path = path;
        foreach (var property in root.EnumerateObject())
        {
            if (!_fields.TryAdd(property.Name, property.Value))
                throw new ModelConfigException(path, Shorten(property.Name), "appears twice");
        }
    }

    public int Int(string name, int fallback, int min, int max) =>
        TryGet(name, out var e) ? ReadInt(name, e, min, max) : fallback;

    public int? NullableInt(string name, int? fallback, int min, int max)
    {
        if (!TryGet(name, out var e)) return fallback;
        return e.ValueKind == JsonValueKind.Null ? null : ReadInt(name, e, min, max);
    }

    public float Float(string name, float fallback, bool positive)
    {
        if (!TryGet(name, out var e)) return fallback;
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double value))
            throw Wrong(name, e, "a number");
        float f = (float)value;
        if (!float.IsFinite(f) || (positive && f <= 0))
            throw Wrong(name, e, positive ? "a finite positive number" : "a finite number");
        return f;
    }

    public bool Bool(string name, bool fallback)
    {
        if (!TryGet(name, out var e)) return fallback;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(name, e, "true or false"),
        };
    }

    public string Choice(string name, string fallback, IReadOnlyList<string> allowed)
    {
        if (!TryGet(name, out var e)) return fallback;
        if (e.ValueKind != JsonValueKind.String) throw Wrong(name, e, "a string");
        string value = e.GetString()!;
        if (!allowed.Contains(value))
            throw new ModelConfigException(_path, name, $"'{Shorten(value)}' is not supported (supported: {string.Join(", ", allowed)})");
        return value;
    }

    public void MustBeNull(string name, string why)
    {
        if (TryGet(name, out var e) && e.ValueKind != JsonValueKind.Null)
            throw new ModelConfigException(_path, name, $"{Shorten(e.GetRawText())}: {why}");
    }

    /// <summary>sample_size is an int or a [height, width] pair; we only run square images.</summary>
    public int? SampleSize(string name)
    {
        if (!TryGet(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.Array) return ReadInt(name, e, 1, UNet2DConfig.MaxChannels);
        if (e.GetArrayLength() != 2) throw Wrong(name, e, "an integer or a [height, width] pair");
        int h = ReadInt(name, e[0], 1, UNet2DConfig.MaxChannels), w = ReadInt(name, e[1], 1, UNet2DConfig.MaxChannels);
        if (h != w) throw new ModelConfigException(_path, name, $"[{h}, {w}] is not square; only square samples are supported");
        return h;
    }

    public IReadOnlyList<int> IntList(string name, IReadOnlyList<int> fallback, int min, int max, int maxCount)
    {
        if (!TryGet(name, out var e)) return fallback;
        var array = ReadArray(name, e, maxCount);
        return array.Select(item => ReadInt(name, item, min, max)).ToArray();
    }

    public IReadOnlyList<string> StringList(string name, IReadOnlyList<string> fallback, IReadOnlyList<string> allowed, int maxCount)
    {
        if (!TryGet(name, out var e)) return fallback;
        var array = ReadArray(name, e, maxCount);
        return array.Select(item =>
        {
            if (item.ValueKind != JsonValueKind.String) throw Wrong(name, item, "a list of strings");
            string value = item.GetString()!;
            if (!allowed.Contains(value))
                throw new ModelConfigException(_path, name, $"block type '{Shorten(value)}' is not supported (supported: {string.Join(", ", allowed)})");
            return value;
        }).ToArray();
    }

    private List<JsonElement> ReadArray(string name, JsonElement e, int maxCount)
    {
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(name, e, "a list");
        int count = e.GetArrayLength();
        if (count == 0 || count > maxCount)
            throw new ModelConfigException(_path, name, $"has {count} entries; between 1 and {maxCount} are supported");
        return e.EnumerateArray().ToList();
    }

    private int ReadInt(string name, JsonElement e, int min, int max)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long value))
            throw Wrong(name, e, "an integer");
        if (value < min || value > max)
            throw new ModelConfigException(_path, name, $"{value} is out of the supported range [{min}, {max}]");
        return (int)value;
    }

    /// <summary>An absent field takes the default; an explicit null is a value (and wrong unless the field allows it).</summary>
    private bool TryGet(string name, out JsonElement element) => _fields.TryGetValue(name, out element);

    private ModelConfigException Wrong(string name, JsonElement e, string expected) =>
        new(_path, name, $"must be {expected}, not {Shorten(e.GetRawText())}");

    /// <summary>Values come from the file; a hostile megabyte-long value must not become a megabyte-long message.</summary>
    private static string Shorten(string text) => text.Length <= 100 ? text : text[..100] + "…";
}
