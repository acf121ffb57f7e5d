using System.Text;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

/// <summary>
/// Deterministic corruptions of real configs. Each must parse (and then lay out its tensors without error)
/// or fail with <see cref="ModelConfigException"/>; never another exception, never a hang.
/// </summary>
public class UNet2DConfigFuzzTests
{
    private const string Source = "fuzz/config.json";
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    private static readonly string[] Fields =
    [
        "sample_size", "in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types",
        "up_block_types", "norm_num_groups", "norm_eps", "attention_head_dim", "flip_sin_to_cos", "freq_shift",
        "downsample_padding", "mid_block_scale_factor", "center_input_sample", "act_fn", "time_embedding_type",
        "add_attention", "resnet_time_scale_shift", "class_embed_type", "num_class_embeds", "attn_norm_num_groups",
    ];

    private static IEnumerable<(string Kind, string Json)> Cases()
    {
        var random = new Random(1234);
        string[] bases = [ModelJson.Cifar10, ModelJson.Tiny];
        foreach (string json in bases)
        {
            for (int length = 0; length < json.Length; length++)
                yield return ("truncated", json[..length]);
        }

        foreach (string field in Fields)
        {
            foreach (string token in HostileInput.Tokens)
                yield return ("field = token", ModelJsonOrRaw(ModelJson.Tiny, field, token));
        }

        for (int i = 0; i < 4000; i++)
        {
            string json = bases[i % 2];
            int edits = 1 + random.Next(3);
            for (int e = 0; e < edits; e++) json = HostileInput.EditJson(json, random);
            yield return ("JSON edit", json);
        }

        yield return ("deep nesting", "{\"block_out_channels\":" + HostileInput.Nested(100_000) + "}");
        yield return ("deep objects", HostileInput.Nested(10_000, "{\"a\":", "}", "{}"));
        yield return ("100 MB string value", "{\"act_fn\":\"" + new string('s', 100_000_000) + "\"}");
        yield return ("100 MB key", "{\"" + new string('k', 100_000_000) + "\":1}");
    }

    /// <summary>Replaces a field with raw text, even text that is not JSON (so the parser sees it, not the test).</summary>
    private static string ModelJsonOrRaw(string json, string field, string raw)
    {
        string marker = "\"__FUZZ__\"";
        return ModelJson.With(json, field, marker).Replace(marker, raw, StringComparison.Ordinal);
    }

    [Fact]
    public void Corrupted_configs_parse_or_fail_with_the_typed_exception()
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        int tried = 0;
        foreach (var (kind, json) in Cases())
        {
            tried++;
            var outcome = HostileInput.Run(() =>
            {
                var config = UNet2DConfig.Parse(json, Source);
                UNet2DLayout.ParameterCount(config).Should().BePositive();
                return "ok";
            }, e => e is ModelConfigException m && m.FilePath == Source ? $"ModelConfigException: {m.Field ?? "(whole file)"}" : null, Limit);
            counts[outcome.Class] = counts.GetValueOrDefault(outcome.Class) + 1;
            if (outcome.Class.StartsWith("UNEXPECTED", StringComparison.Ordinal) || outcome.Class == "HANG")
                failures.Add($"{kind} #{tried}: {outcome.Class}");
        }

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{tried} config cases");
        foreach (var (name, count) in counts) output?.WriteLine($"  {count,6}  {name}");
        tried.Should().BeGreaterThan(5000);
        counts.GetValueOrDefault("ok").Should().BeGreaterThan(0);
        failures.Should().BeEmpty();
    }

    [Fact]
    public void Config_files_that_are_not_text_or_too_large_are_refused()
    {
        using var dir = new TempDirectory();
        string path = dir.File("config.json");

        File.WriteAllBytes(path, [(byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}']);
        var binary = () => UNet2DConfig.Load(path);
        binary.Should().Throw<ModelConfigException>().Where(e => e.FilePath == path && e.Problem.Contains("not UTF-8"));

        using (var stream = File.Create(path)) stream.SetLength(ConfigFilesLimit + 1);
        var huge = () => UNet2DConfig.Load(path);
        huge.Should().Throw<ModelConfigException>().Where(e => e.FilePath == path && e.Problem.Contains("not one"));

        File.WriteAllText(path, "{\"act_fn\": \"\\udc00\"}", Encoding.UTF8);
        var surrogate = () => UNet2DConfig.Load(path);
        surrogate.Should().Throw<ModelConfigException>().Where(e => e.Problem.Contains("not valid Unicode"));
    }

    private const long ConfigFilesLimit = 16 << 20;
}
