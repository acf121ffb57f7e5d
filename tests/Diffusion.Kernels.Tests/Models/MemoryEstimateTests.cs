using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Models;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Models;

public class MemoryEstimateTests
{
    [Fact]
    public void The_estimate_grows_with_batch_and_resolution()
    {
        var golden = Golden.Load("unet_tiny");
        using var backend = new CpuBackend();
        using var net = UNet2D.Create(golden.Config, golden.Weights, backend);

        long one = net.ActivationBytes(1, 16, 12);
        net.ActivationBytes(8, 16, 12).Should().Be(8 * one);
        net.ActivationBytes(1, 32, 24).Should().Be(4 * one);
        // At least the skip stack's first entry, the conv_in output: 16 channels × 16 × 12 floats.
        one.Should().BeGreaterThan(16 * 16 * 12 * sizeof(float));
    }

    [Fact]
    public void A_batch_beyond_free_memory_is_refused_before_anything_is_allocated()
    {
        var golden = Golden.Load("unet_tiny");
        using var backend = new CpuBackend();
        using var net = UNet2D.Create(golden.Config, golden.Weights, backend);
        // Far more than any machine this runs on has: about 1.5 TB for a 4096×4096 batch of 100.
        var act = () => net.EnsureMemoryFor(100, 4096, 4096);

        act.Should().Throw<InsufficientMemoryForBatchException>()
            .WithMessage("batch 100 at 4096×4096 needs about * MiB of memory, but the cpu backend has * MiB free*")
            .Which.NeededBytes.Should().BeGreaterThan(backend.AvailableMemoryBytes());
    }
}

internal static class BackendMemory
{
    /// <summary>The interface's default member, reached through the interface as callers do.</summary>
    public static long AvailableMemoryBytes(this Backends.IBackend backend) => backend.AvailableMemoryBytes;
}
