using Diffusion.Kernels.Backends.Cuda;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>Launch shapes computed from made-up device properties (published figures of real GPUs).</summary>
public sealed class LaunchGeometryTests
{
    internal static readonly DeviceProperties H100 = new("H100", 9, 0, 132, 1024, 2048, 48 << 10, 227 << 10, 32, 80L << 30);
    internal static readonly DeviceProperties A100 = new("A100", 8, 0, 108, 1024, 2048, 48 << 10, 163 << 10, 32, 40L << 30);
    internal static readonly DeviceProperties T4 = new("T4", 7, 5, 40, 1024, 1024, 48 << 10, 64 << 10, 32, 16L << 30);

    [Fact]
    public void Elementwise_grid_covers_small_work_exactly_and_caps_large_work_at_the_device()
    {
        LaunchGeometry.Elementwise(1000, H100).Should().Be(new Launch(4, 1, 1, 256));
        LaunchGeometry.Elementwise(0, H100).GridX.Should().Be(1);
        LaunchGeometry.Elementwise(1L << 30, H100).GridX.Should().Be(132 * 8 * 2);
        LaunchGeometry.Elementwise(1L << 30, T4).GridX.Should().Be(40 * 4 * 2, "a smaller GPU gets a smaller grid");
    }

    [Fact]
    public void Conv_tiles_cover_every_pixel_and_channel()
    {
        var launch = LaunchGeometry.Conv2dTiled(batch: 2, outputPixels: 16 * 16, outChannels: 130);
        launch.Should().Be(new Launch(8, 3, 1, 256));
        (launch.GridX * 64).Should().BeGreaterThanOrEqualTo(2 * 256);
        (launch.GridY * 64).Should().BeGreaterThanOrEqualTo(130);
    }

    [Fact]
    public void Group_norm_threads_follow_the_group_size()
    {
        LaunchGeometry.GroupNorm(2, 32, 4 * 32 * 32, H100).Should().Be(new Launch(64, 1, 1, 256));
        LaunchGeometry.GroupNorm(1, 32, 2 * 4 * 4, H100).Threads.Should().Be(32);
        LaunchGeometry.GroupNorm(1, 32, 70, H100).Threads.Should().Be(96);
    }

    [Fact]
    public void Linear_runs_one_warp_per_output()
    {
        LaunchGeometry.LinearWarpPerOutput(rows: 2, outFeatures: 512).Should().Be(new Launch(128, 1, 1, 256));
    }

    [Fact]
    public void Attention_takes_32_queries_per_block_when_the_device_stays_full()
    {
        var launch = LaunchGeometry.AttentionFlash(batch: 64, heads: 1, tokens: 256, headDim: 256, H100, 12672, 17024);
        launch!.Value.Entry.Should().Be("attention_v2_q32");
        launch.Value.Launch.Should().Be(new Launch(8, 1, 64, 256, 32 * 257 * 4));
    }

    [Fact]
    public void Attention_takes_16_queries_per_block_when_32_would_leave_SMs_idle()
    {
        var launch = LaunchGeometry.AttentionFlash(batch: 1, heads: 1, tokens: 256, headDim: 256, H100, 12672, 17024);
        launch!.Value.Entry.Should().Be("attention_v2_q16");
        launch.Value.Launch.Should().Be(new Launch(16, 1, 1, 128, 16 * 257 * 4));
    }

    [Fact]
    public void Attention_shrinks_or_falls_back_when_shared_memory_is_short()
    {
        // head_dim 512: 32 rows need 65.7 KB of output rows, more than a T4 allows; 16 rows fit.
        LaunchGeometry.AttentionFlash(64, 1, 1024, 512, T4, 12672, 17024)!.Value.Entry.Should().Be("attention_v2_q16");
        LaunchGeometry.AttentionFlash(64, 1, 1024, 512, H100, 12672, 17024)!.Value.Entry.Should().Be("attention_v2_q32");
        LaunchGeometry.AttentionFlash(64, 1, 1024, 4096, T4, 12672, 17024).Should().BeNull("the caller falls back to attention_v1");
    }

    [Fact]
    public void Tensor_core_attention_takes_64_queries_per_block_and_sizes_its_tiles_by_the_head()
    {
        // d = 256: (64 + 32) rows of 264 halves for Q and K, 256 rows of 40 halves for V.
        LaunchGeometry.AttentionTensorCore(batch: 2, heads: 1, tokens: 256, headDim: 256, A100)
            .Should().Be(new Launch(4, 1, 2, 128, ((64 + 32) * 264 + 256 * 40) * 2));
        // d = 40 pads to 48; 40 tokens are one partial query tile.
        LaunchGeometry.AttentionTensorCore(batch: 1, heads: 2, tokens: 40, headDim: 40, A100)
            .Should().Be(new Launch(1, 2, 1, 128, ((64 + 32) * 56 + 48 * 40) * 2));
        LaunchGeometry.AttentionTensorCore(1, 1, 256, 257, H100).Should().BeNull("wider heads run version 2");
    }

    [Fact]
    public void Per_query_attention_rejects_rows_larger_than_shared_memory()
    {
        LaunchGeometry.AttentionPerQuery(1, 1, 1024, T4, 128).Should().Be(new Launch(1024, 1, 1, 128, 4096));
        FluentActions.Invoking(() => LaunchGeometry.AttentionPerQuery(1, 1, 1 << 16, T4, 128))
            .Should().Throw<DiffusionException>().WithMessage("*shared memory*T4*");
    }

    [Fact]
    public void Cubin_is_chosen_for_known_architectures_and_ptx_for_newer_ones()
    {
        int[] supported = [75, 80, 86, 89, 90];
        KernelTarget.Choose(80, supported).Should().Be(new KernelTarget(80, true));
        KernelTarget.Choose(120, supported).Should().Be(new KernelTarget(90, false));
        KernelTarget.Choose(87, supported).Should().Be(new KernelTarget(86, false));
        KernelTarget.Choose(90, supported).GpuArchitecture.Should().Be("sm_90");
        KernelTarget.Choose(120, supported).GpuArchitecture.Should().Be("compute_90");
        FluentActions.Invoking(() => KernelTarget.Choose(61, supported)).Should().Throw<DiffusionException>().WithMessage("*6.1*");
    }

    [Fact]
    public void Kernel_versions_default_to_the_fastest_float32_ones_and_reject_unknown_ones()
    {
        KernelVersions.From(_ => null).Should().Be(new KernelVersions(2, 2, 2, 2));
        KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_conv2d" ? "1" : null).Conv2d.Should().Be(1);
        KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_conv2d" ? "3" : null).Conv2d.Should().Be(3, "half precision is opt-in");
        FluentActions.Invoking(() => KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_conv2d" ? "4" : null))
            .Should().Throw<DiffusionException>().WithMessage("*conv2d.cu (1 to 3)*");
        KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_attention" ? "3" : null).Attention.Should().Be(3, "half precision is opt-in");
        FluentActions.Invoking(() => KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_attention" ? "4" : null))
            .Should().Throw<DiffusionException>().WithMessage("DIFFUSION_KERNEL_VERSION_attention=4*attention.cu (1 to 3)*");
        FluentActions.Invoking(() => KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_group_norm" ? "3" : null))
            .Should().Throw<DiffusionException>().WithMessage("DIFFUSION_KERNEL_VERSION_group_norm=3*group_norm.cu*");
    }
}
