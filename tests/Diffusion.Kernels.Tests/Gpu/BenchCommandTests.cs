using System.Text.Json;
using Diffusion.Kernels.Tests.Cli;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>
/// <c>diffuse bench</c> end to end on the CPU (the GPU path differs only in the backend and the timer): the JSON
/// that bench/cudnn/compare.py reads has one row per op shape and batch with the fields it needs, and bad
/// arguments are usage errors.
/// </summary>
public sealed class BenchCommandTests
{
    [Fact]
    public void Cpu_bench_writes_a_row_per_shape_and_batch_with_parameters_for_the_pytorch_side()
    {
        using var folder = new TempDirectory(); // deleted afterwards, unlike a bare temporary subdirectory
        string json = folder.File("bench.json");

        var result = DiffuseProcess.Run("bench", "--device", "cpu", "--ops", "attention,sampler,linear", "--batch", "1,3",
            "--iterations", "2", "--warmup", "0", "--json", json);

        result.ExitCode.Should().Be(0, result.StandardError);
        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var rows = document.RootElement.GetProperty("rows").EnumerateArray().ToList();
        rows.Should().HaveCount(2 * (1 + 1 + 3));
        rows.Select(r => r.GetProperty("Batch").GetInt32()).Distinct().Should().BeEquivalentTo([1, 3]);
        rows.Should().OnlyContain(r => r.GetProperty("Ms").GetDouble() > 0 && r.GetProperty("Passed").GetBoolean());
        var attention = rows.First(r => r.GetProperty("Op").GetString() == "attention");
        attention.GetProperty("Params").GetProperty("c").GetInt32().Should().Be(256);
        attention.GetProperty("Params").GetProperty("heads").GetInt32().Should().Be(1);
        attention.GetProperty("Gflops").GetDouble().Should().BeGreaterThan(0);
        result.StandardOutput.Should().Contain("16×16 attention, 256 ch, 1 head");
    }

    /// <summary>The kernel lab over the GPU kernels, on the emulated device: every version of an op, checked against the CPU backend.</summary>
    [Fact]
    public void Emulated_bench_checks_every_kernel_version_against_the_cpu_backend()
    {
        string json = Path.Combine(Directory.CreateTempSubdirectory("diffuse-bench-").FullName, "bench.json");

        var result = DiffuseProcess.Run("bench", "--device", "emulated", "--ops", "linear,sampler", "--batch", "1", "--versions",
            "--iterations", "1", "--warmup", "0", "--json", json);

        result.ExitCode.Should().Be(0, result.StandardError);
        result.StandardError.Should().Contain("device: emulated GPU");
        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var rows = document.RootElement.GetProperty("rows").EnumerateArray().ToList();
        int linearVersions = Diffusion.Kernels.Gpu.KernelCatalog.Latest("linear");
        rows.Should().HaveCount(3 * linearVersions + 1, "three linear shapes at every version, one sampler step");
        rows.Should().OnlyContain(r => r.GetProperty("Passed").GetBoolean() && r.GetProperty("Error").GetDouble() >= 0);
        rows.Where(r => r.GetProperty("Op").GetString() == "linear").Select(r => r.GetProperty("Version").GetString())
            .Distinct().Should().HaveCount(linearVersions);
    }

    [Theory]
    [InlineData("--ops", "conv,fft")]
    [InlineData("--batch", "0")]
    [InlineData("--iterations", "0")]
    public void Bad_arguments_are_usage_errors(string option, string value)
    {
        var result = DiffuseProcess.Run("bench", "--device", "cpu", option, value);
        result.ExitCode.Should().Be(2, result.StandardError);
        result.StandardError.Should().Contain(option);
    }
}
