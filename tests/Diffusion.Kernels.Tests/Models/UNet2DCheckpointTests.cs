using System.Text.RegularExpressions;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

public class UNet2DCheckpointTests
{
    private static readonly UNet2DConfig Tiny = UNet2DConfig.Parse(ModelJson.Tiny, "tiny/config.json");

    [Fact]
    public void Current_diffusers_names_bind_to_every_expected_tensor()
    {
        using var dir = new TempDirectory();
        var weights = CheckpointFixture.RandomWeights(Tiny, 1);
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, weights);

        var checkpoint = UNet2DCheckpoint.Load(ModelFolder.Open(dir.Path), TestContext.Current.CancellationToken);

        checkpoint.Tensors.Keys.Should().BeEquivalentTo(weights.Keys);
        foreach (var (name, tensor) in weights)
        {
            checkpoint[name].Shape.Should().Equal(tensor.Shape);
            checkpoint[name].Data.Should().Equal(tensor.Data, name);
        }
        checkpoint.SourceDTypes.Values.Should().AllBeEquivalentTo(SafetensorsDType.F32);
        checkpoint.ParameterCount.Should().Be(UNet2DLayout.ParameterCount(Tiny));
    }

    [Fact]
    public void Legacy_attention_names_and_1x1_conv_shapes_bind_to_current_names()
    {
        using var dir = new TempDirectory();
        var weights = CheckpointFixture.RandomWeights(Tiny, 2);
        var legacy = weights.Select(kv =>
        {
            string name = Regex.Replace(kv.Key, @"\.to_q\.", ".query.");
            name = Regex.Replace(name, @"\.to_k\.", ".key.");
            name = Regex.Replace(name, @"\.to_v\.", ".value.");
            name = Regex.Replace(name, @"\.to_out\.0\.", ".proj_attn.");
            // Some old checkpoints stored the projections as 1×1 convolutions.
            var tensor = name.EndsWith("proj_attn.weight", StringComparison.Ordinal)
                ? new HostTensor([.. kv.Value.Shape, 1, 1], kv.Value.Data)
                : kv.Value;
            return new KeyValuePair<string, HostTensor>(name, tensor);
        }).ToList();
        legacy.Should().Contain(kv => kv.Key == "mid_block.attentions.0.proj_attn.weight");
        legacy.Should().Contain(kv => kv.Key == "down_blocks.1.attentions.0.query.bias");
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, legacy);

        var checkpoint = UNet2DCheckpoint.Load(dir.File(ModelFolder.WeightsFileName), Tiny, TestContext.Current.CancellationToken);

        checkpoint.Tensors.Keys.Should().BeEquivalentTo(weights.Keys);
        checkpoint["mid_block.attentions.0.to_out.0.weight"].Shape.Should().Equal(32, 32);
        checkpoint["mid_block.attentions.0.to_out.0.weight"].Data.Should().Equal(weights["mid_block.attentions.0.to_out.0.weight"].Data);
        checkpoint["up_blocks.0.attentions.1.to_k.bias"].Data.Should().Equal(weights["up_blocks.0.attentions.1.to_k.bias"].Data);
    }

    [Theory]
    [InlineData(SafetensorsDType.F16)]
    [InlineData(SafetensorsDType.BF16)]
    public void Half_precision_checkpoints_widen_to_float32_and_remember_their_dtype(SafetensorsDType dtype)
    {
        using var dir = new TempDirectory();
        var weights = CheckpointFixture.RandomWeights(Tiny, 3);
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, weights, dtype);

        var checkpoint = UNet2DCheckpoint.Load(ModelFolder.Open(dir.Path), TestContext.Current.CancellationToken);

        checkpoint.SourceDTypes.Values.Should().AllBeEquivalentTo(dtype);
        float tolerance = dtype == SafetensorsDType.F16 ? 1f / 2048 : 1f / 256; // half an ulp at |x| < 1
        var original = weights["conv_in.weight"].Data;
        var loaded = checkpoint["conv_in.weight"].Data;
        loaded.Should().NotEqual(original);
        loaded.Zip(original, (a, b) => MathF.Abs(a - b)).Max().Should().BeLessThanOrEqualTo(tolerance);
    }

    [Fact]
    public void Every_mismatch_is_reported_in_one_exception()
    {
        using var dir = new TempDirectory();
        var weights = CheckpointFixture.RandomWeights(Tiny, 4);
        weights.Remove("conv_in.bias");
        weights.Remove("up_blocks.1.attentions.0.to_v.weight");
        weights["down_blocks.0.resnets.0.conv1.weight"] = new HostTensor(16, 16, 1, 1);
        weights["class_embedding.weight"] = new HostTensor(10, 64);
        weights["mid_block.attentions.0.query.weight"] = new HostTensor(32, 32);
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, weights);
        string path = dir.File(ModelFolder.WeightsFileName);

        var act = () => UNet2DCheckpoint.Load(path, Tiny, TestContext.Current.CancellationToken);

        var error = act.Should().Throw<CheckpointMismatchException>().Which;
        error.FilePath.Should().Be(path);
        error.Missing.Should().BeEquivalentTo("conv_in.bias", "up_blocks.1.attentions.0.to_v.weight");
        error.Unexpected.Should().BeEquivalentTo("class_embedding.weight");
        error.WrongShape.Should().BeEquivalentTo("down_blocks.0.resnets.0.conv1.weight", "mid_block.attentions.0.to_q.weight");
        error.Message.Should().Contain(path).And.Contain("5 problems")
            .And.Contain("missing: conv_in.bias (expected [16])")
            .And.Contain("unexpected: class_embedding.weight [10, 64]")
            .And.Contain("wrong shape: down_blocks.0.resnets.0.conv1.weight is [16, 16, 1, 1], expected [16, 16, 3, 3]")
            .And.Contain("both provide mid_block.attentions.0.to_q.weight");
    }

    /// <summary>A header of 200,000 stray tensors once made a 5 MB message; the first few problems and a count are enough.</summary>
    [Fact]
    public void A_header_of_many_stray_tensors_makes_a_short_message_that_counts_the_rest()
    {
        using var dir = new TempDirectory();
        string path = dir.File("many.safetensors");
        const int stray = 200_000;
        var header = new System.Text.StringBuilder("{");
        for (int i = 0; i < stray; i++) header.Append(i == 0 ? "" : ",").Append($"\"stray.{i}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        File.WriteAllBytes(path, SafetensorsBytes.Build(header.Append('}').ToString()));

        var act = () => UNet2DCheckpoint.Load(path, Tiny, TestContext.Current.CancellationToken);

        var error = act.Should().Throw<CheckpointMismatchException>().Which;
        int total = UNet2DLayout.ExpectedTensors(Tiny).Count + stray;
        error.Problems.Should().HaveCount(total);
        error.Message.Length.Should().BeLessThan(4_000);
        error.Message.Should().Contain($"({total} problems)").And.Contain($"… and {total - CheckpointMismatchException.ShownProblems} more (--verbose lists them all)");
        error.Message.Split('\n').Should().HaveCount(CheckpointMismatchException.ShownProblems + 2);
    }

    [Fact]
    public void Integer_weights_are_refused()
    {
        using var dir = new TempDirectory();
        var weights = CheckpointFixture.RandomWeights(Tiny, 5);
        var raw = weights.Select(kv => kv.Key == "conv_out.bias"
            ? new SafetensorsRawTensor(kv.Key, SafetensorsDType.I32, kv.Value.Shape, new byte[kv.Value.Data.Length * 4])
            : new SafetensorsRawTensor(kv.Key, SafetensorsDType.F32, kv.Value.Shape, kv.Value.Data.SelectMany(BitConverter.GetBytes).ToArray()));
        string path = dir.File("w.safetensors");
        SafetensorsWriter.WriteRaw(path, raw);

        var act = () => UNet2DCheckpoint.Load(path, Tiny, TestContext.Current.CancellationToken);

        act.Should().Throw<CheckpointMismatchException>().Where(e => e.WrongShape.Contains("conv_out.bias") && e.Message.Contains("wrong dtype: conv_out.bias is I32"));
    }

    [Fact]
    public void Asking_for_an_unknown_parameter_names_it()
    {
        using var dir = new TempDirectory();
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, CheckpointFixture.RandomWeights(Tiny, 6));
        var checkpoint = UNet2DCheckpoint.Load(ModelFolder.Open(dir.Path), TestContext.Current.CancellationToken);

        var act = () => checkpoint["conv_in.weight_typo"];

        act.Should().Throw<ModelConfigException>().WithMessage("*'conv_in.weight_typo'*");
    }

    [Fact]
    public void Loading_stops_when_cancelled()
    {
        using var dir = new TempDirectory();
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Tiny, CheckpointFixture.RandomWeights(Tiny, 8));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        var act = () => UNet2DCheckpoint.Load(ModelFolder.Open(dir.Path), cancelled.Token);

        act.Should().Throw<OperationCanceledException>();
    }

    [Fact]
    public void Cifar10_checkpoint_loads_all_35_746_307_parameters_and_info_reports_them()
    {
        using var dir = new TempDirectory();
        var config = UNet2DConfig.Parse(ModelJson.Cifar10, "cifar10/config.json");
        CheckpointFixture.WriteUNetFolder(dir.Path, ModelJson.Cifar10, CheckpointFixture.RandomWeights(config, 7), SafetensorsDType.F16);

        var checkpoint = UNet2DCheckpoint.Load(ModelFolder.Open(dir.Path), TestContext.Current.CancellationToken);

        checkpoint.ParameterCount.Should().Be(35_746_307);
        checkpoint.Tensors.Should().HaveCount(UNet2DLayout.ExpectedTensors(config).Count);
        var output = new StringWriter();
        Diffusion.Cli.InfoCommand.Run(dir.Path, output, TextWriter.Null, cancellationToken: TestContext.Current.CancellationToken).Should().Be(0);
        output.ToString().Should().Contain("Parameters  35,746,307").And.Contain("F16 (");
    }
}
