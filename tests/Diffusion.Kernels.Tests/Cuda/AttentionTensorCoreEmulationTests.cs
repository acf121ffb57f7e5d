using System.Diagnostics;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// attention version 3's index arithmetic, checked without a GPU: attention_v3_emulation.py replays the kernel lane
/// by lane with mma.sync replaced by its PTX-documented fragment semantics, checks that every staged half and every
/// output is written exactly once, and compares with float64 attention (normalised error under the GPU tests' 3e-3)
/// and with float64 attention of the fp16-rounded inputs (under 1e-3). Skipped when /usr/bin/python3 with numpy is
/// missing. The real tensor cores are exercised only by CudaHalfPrecisionAndGraphTests on a GPU.
/// </summary>
public sealed class AttentionTensorCoreEmulationTests
{
    [Fact]
    public async Task Emulated_kernel_computes_attention()
    {
        const string python = "/usr/bin/python3";
        if (!File.Exists(python)) Assert.Skip($"{python} is not installed");
        var ct = TestContext.Current.CancellationToken;
        using (var probe = Process.Start(new ProcessStartInfo(python, ["-c", "import numpy"]) { RedirectStandardError = true })!)
        {
            await probe.WaitForExitAsync(ct);
            if (probe.ExitCode != 0) Assert.Skip("numpy is not installed for " + python);
        }
        string script = Path.Combine(RepositoryPaths.Root, "tests", "Diffusion.Kernels.Tests", "Cuda", "attention_v3_emulation.py");

        using var process = Process.Start(new ProcessStartInfo(python, [script]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);

        process.ExitCode.Should().Be(0, await stdout + await stderr);
        (await stdout).Should().EndWith("OK\n");
    }
}
