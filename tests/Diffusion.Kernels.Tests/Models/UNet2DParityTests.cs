using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

/// <summary>
/// The whole U-Net against outputs PyTorch produced with weights/reference_unet.py
/// (regenerate: /usr/bin/python3 weights/make_goldens.py). Tolerance: max abs error ≤ 1e-4 on O(1) outputs.
/// </summary>
public class UNet2DParityTests
{
    private const float Tolerance = 1e-4f;

    public static IEnumerable<object[]> TinyGoldens => TestBackends.WithBackends([["unet_tiny"], ["unet_tiny2"]]);

    /// <summary>On every backend: the CUDA forward is held to the same PyTorch numbers as the CPU one.</summary>
    [Theory]
    [MemberData(nameof(TinyGoldens))]
    public void Tiny_models_match_pytorch(string backendName, string name)
    {
        using var backend = TestBackends.Create(backendName);
        var golden = Golden.Load(name);
        using var net = UNet2D.Create(golden.Config, golden.Weights, backend);

        var output = net.Forward(golden.Sample, golden.Timesteps);

        Report(MaxAbsDifference(output, golden.Output)).Should().BeLessThanOrEqualTo(Tolerance);
    }

    /// <summary>The 35.7M-parameter CIFAR-10 U-Net: millions of GPU threads per forward, beyond the emulated device's budget.</summary>
    public static IEnumerable<object[]> Cifar10Backends => TestBackends.WithBackends([[]], _ => 128L * 32 * 32);

    [Theory]
    [MemberData(nameof(Cifar10Backends))]
    public void Cifar10_architecture_with_synthetic_weights_matches_pytorch(string backendName)
    {
        using var backend = TestBackends.Create(backendName);
        var config = UNet2DConfig.Load(Path.Combine(RepositoryPaths.Goldens, "unet_cifar10_config.json"));
        // The goldens were made from SyntheticWeights with seed 42 (weights/synthetic_weights.py).
        var weights = UNet2DLayout.ExpectedTensors(config)
            .ToDictionary(t => t.Name, t => new HostTensor(t.Shape, SyntheticWeights.Generate(t.Name, t.Shape, 42)));
        using var file = SafetensorsFile.Open(Path.Combine(RepositoryPaths.Goldens, "unet_cifar10.safetensors"));
        using var net = UNet2D.Create(config, weights, backend);

        var output = net.Forward(file.ReadTensor("sample"), file.ReadFloat32("timesteps"));

        Report(MaxAbsDifference(output, file.ReadTensor("output"))).Should().BeLessThanOrEqualTo(Tolerance);
    }

    [Fact]
    public void Loading_a_diffusers_folder_gives_the_same_numbers_as_the_tensors_it_holds()
    {
        var golden = Golden.Load("unet_tiny");
        using var folder = new TemporaryModelFolder(golden.ConfigPath, golden.Weights, SafetensorsDType.F32);
        using var backend = new CpuBackend();
        using var net = UNet2D.Load(folder.Path, backend, TestContext.Current.CancellationToken);

        var output = net.Forward(golden.Sample, golden.Timesteps);

        Report(MaxAbsDifference(output, golden.Output)).Should().BeLessThanOrEqualTo(Tolerance);
    }

    /// <summary>
    /// Half-precision checkpoints load by widening to float32: the result must equal the float32 model run on
    /// the same rounded weights exactly, and stay near the full-precision output.
    /// </summary>
    [Theory]
    [InlineData(SafetensorsDType.F16, 5e-3f)]
    [InlineData(SafetensorsDType.BF16, 5e-2f)]
    public void Half_precision_checkpoints_load_and_run(SafetensorsDType dtype, float closeToFloat32)
    {
        var golden = Golden.Load("unet_tiny");
        using var folder = new TemporaryModelFolder(golden.ConfigPath, golden.Weights, dtype);
        using var backend = new CpuBackend();
        using var fromHalf = UNet2D.Load(folder.Path, backend, TestContext.Current.CancellationToken);
        var rounded = golden.Weights.ToDictionary(kv => kv.Key, kv => RoundTrip(kv.Value, dtype));
        using var fromRounded = UNet2D.Create(golden.Config, rounded, backend);

        var halfOutput = fromHalf.Forward(golden.Sample, golden.Timesteps);
        var roundedOutput = fromRounded.Forward(golden.Sample, golden.Timesteps);

        MaxAbsDifference(halfOutput, roundedOutput).Should().Be(0f);
        MaxAbsDifference(halfOutput, golden.Output).Should().BeGreaterThan(0f).And.BeLessThanOrEqualTo(closeToFloat32);
    }

    [Fact]
    public void One_timestep_is_broadcast_to_the_whole_batch()
    {
        var golden = Golden.Load("unet_tiny");
        using var backend = new CpuBackend();
        using var net = UNet2D.Create(golden.Config, golden.Weights, backend);
        float t = golden.Timesteps[1];

        var broadcast = net.Forward(golden.Sample, [t]);
        var explicitly = net.Forward(golden.Sample, [t, t, t]);

        MaxAbsDifference(broadcast, explicitly).Should().Be(0f);
    }

    private static float Report(float error)
    {
        TestContext.Current.TestOutputHelper?.WriteLine($"max abs error vs PyTorch: {error:E2}");
        return error;
    }

    internal static float MaxAbsDifference(HostTensor actual, HostTensor expected)
    {
        actual.Shape.Should().Equal(expected.Shape);
        float max = 0;
        for (int i = 0; i < actual.Data.Length; i++)
        {
            float d = MathF.Abs(actual.Data[i] - expected.Data[i]);
            if (!(d <= max)) max = float.IsNaN(d) ? float.PositiveInfinity : d;
        }
        return max;
    }

    private static HostTensor RoundTrip(HostTensor tensor, SafetensorsDType dtype)
    {
        var data = tensor.Data.Select(v => dtype == SafetensorsDType.F16 ? (float)(Half)v : BFloat16Round(v)).ToArray();
        return new HostTensor(tensor.Shape, data);
    }

    /// <summary>float32 → bfloat16 with round-to-nearest-even, widened back.</summary>
    private static float BFloat16Round(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
    }
}

/// <summary>A golden file of weights/goldens: config, weights under diffusers names, input and PyTorch output.</summary>
internal sealed record Golden(string ConfigPath, UNet2DConfig Config, Dictionary<string, HostTensor> Weights, HostTensor Sample, float[] Timesteps, HostTensor Output)
{
    public static Golden Load(string name)
    {
        string configPath = Path.Combine(RepositoryPaths.Goldens, name + "_config.json");
        using var file = SafetensorsFile.Open(Path.Combine(RepositoryPaths.Goldens, name + ".safetensors"));
        string[] inputs = ["sample", "timesteps", "output"];
        var weights = file.Tensors
            .Where(t => !inputs.Contains(t.Name) && !t.Name.StartsWith("debug.", StringComparison.Ordinal))
            .ToDictionary(t => t.Name, t => file.ReadTensor(t.Name));
        return new Golden(configPath, UNet2DConfig.Load(configPath), weights,
            file.ReadTensor("sample"), file.ReadFloat32("timesteps"), file.ReadTensor("output"));
    }
}

/// <summary>A diffusers UNet folder in a temporary directory, deleted on dispose.</summary>
internal sealed class TemporaryModelFolder : IDisposable
{
    public TemporaryModelFolder(string configPath, IReadOnlyDictionary<string, HostTensor> weights, SafetensorsDType dtype)
    {
        Path = Directory.CreateTempSubdirectory("diffusion-kernels-model-").FullName;
        File.Copy(configPath, System.IO.Path.Combine(Path, "config.json"));
        SafetensorsWriter.Write(System.IO.Path.Combine(Path, "diffusion_pytorch_model.safetensors"), weights, null, dtype);
    }

    public string Path { get; }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
