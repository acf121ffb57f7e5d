using System.Diagnostics;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// The tensor-core kernels' index arithmetic, checked without a GPU. Each script replays its kernel lane by lane with
/// mma.sync replaced by its PTX-documented fragment semantics, checks that every staged value and every output is
/// written exactly once, and compares with a float64 reference:
/// - conv2d_v3_emulation.py (conv2d version 3): exactly equal to a direct convolution of the fp16-rounded inputs, and
///   within the GPU tests' 3e-3 normalised error of the float64 one;
/// - attention_v3_emulation.py (attention version 3): within 1e-3 of float64 attention of the fp16-rounded inputs
///   and 3e-3 of the float64 one.
/// Skipped when /usr/bin/python3 with numpy is missing. The real tensor cores are exercised only by
/// CudaHalfPrecisionAndGraphTests on a GPU.
/// </summary>
public sealed class TensorCoreEmulationTests
{
    [Theory]
    [InlineData("conv2d_v3_emulation.py")]
    [InlineData("attention_v3_emulation.py")]
    public async Task Emulated_kernel_matches_the_float64_reference(string script)
    {
        const string python = "/usr/bin/python3";
        if (!File.Exists(python)) Assert.Skip($"{python} is not installed");
        var ct = TestContext.Current.CancellationToken;
        using (var probe = Process.Start(new ProcessStartInfo(python, ["-c", "import numpy"]) { RedirectStandardError = true })!)
        {
            await probe.WaitForExitAsync(ct);
            if (probe.ExitCode != 0) Assert.Skip("numpy is not installed for " + python);
        }
        string path = Path.Combine(RepositoryPaths.Root, "tests", "Diffusion.Kernels.Tests", "Cuda", script);

        using var process = Process.Start(new ProcessStartInfo(python, [path]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);

        process.ExitCode.Should().Be(0, await stdout + await stderr);
        (await stdout).Should().EndWith("OK\n");
    }
}
