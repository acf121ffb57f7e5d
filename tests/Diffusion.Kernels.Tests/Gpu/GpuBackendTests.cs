using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Gpu;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Models;
using FluentAssertions;
using static Diffusion.Kernels.Tests.Kernels.KernelCheck;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>
/// What only the GPU backend has, on the emulated device and on a CUDA GPU (skipped, with the reason, without one):
/// the memory pool seen through the backend, typed errors for tensors from elsewhere, kernel versions from the
/// environment, a recorded sampler step replayed with new timesteps and coefficients, and a DDIM run held to 1e-4
/// of the CPU backend. The ops themselves are checked on every backend by the tests in Kernels/.
/// </summary>
public sealed class GpuBackendTests
{
    public static TheoryData<string> Devices => new("emulated", "cuda");

    private static GpuBackend Open(string device)
    {
        if (device == "emulated") return GpuBackend.CreateEmulated(KernelVersions.Default);
        if (GpuBackend.TryCreateCuda(out var cuda, out string reason, versions: KernelVersions.Default)) return cuda!;
        Assert.Skip("no usable CUDA GPU: " + reason);
        throw new InvalidOperationException();
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void Repeated_work_reuses_device_memory_and_frees_everything(string device)
    {
        using var b = Open(device);
        int blocksBefore = b.BlocksInUse;
        var spec = Conv2dSpec.Same3x3(8, 8);
        using (var weights = b.PrepareConv2d(spec, Random(9, 8 * 8 * 9), Random(10, 8)))
        {
            int allocationsAfterFirst = 0;
            for (int step = 0; step < 4; step++)
            {
                using var x = b.Upload(Random(11 + step, 2 * 8 * 8 * 8), 2, 8, 8, 8);
                using var h = b.Allocate(2, 8, 8, 8);
                using var y = b.Allocate(2, 8, 8, 8);
                b.Conv2d(x, weights, h);
                b.SiLU(h, h);
                b.Conv2d(h, weights, y, new Conv2dEpilogue(Residual: x));
                b.Synchronize();
                if (step == 0) allocationsAfterFirst = b.DriverAllocations;
            }
            b.DriverAllocations.Should().Be(allocationsAfterFirst, "later steps reuse the first step's blocks");
        }
        b.BlocksInUse.Should().Be(blocksBefore, "every tensor and weight returned its memory");
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void Foreign_and_misshaped_tensors_get_typed_errors(string device)
    {
        using var b = Open(device);
        using var x = b.Allocate(1, 4, 4, 4);
        using var wrong = b.Allocate(1, 4, 4, 5);
        FluentActions.Invoking(() => b.SiLU(x, wrong)).Should().Throw<BackendArgumentException>().WithMessage("SiLU: *does not match*");
        FluentActions.Invoking(() => b.Attention(x, wrong, 1)).Should().Throw<BackendArgumentException>();

        using var cpu = new CpuBackend();
        using var foreign = cpu.Upload(Random(14, 4 * 4 * 4), 1, 4, 4, 4);
        using var foreignWeights = cpu.PrepareConv2d(Conv2dSpec.Same3x3(4, 4), Random(15, 4 * 4 * 9), Random(16, 4));
        using var y = b.Allocate(1, 4, 4, 4);
        FluentActions.Invoking(() => b.SiLU(foreign, y)).Should().Throw<BackendArgumentException>().WithMessage($"*not allocated by this {device} backend*");
        FluentActions.Invoking(() => b.Conv2d(x, foreignWeights, y)).Should().Throw<BackendArgumentException>().WithMessage("*not prepared by this*");
        FluentActions.Invoking(() => b.Allocate(1 << 16, 1 << 16)).Should().Throw<BackendArgumentException>().WithMessage("*2^31*");

        var t = b.Allocate(3);
        t.Dispose();
        t.Dispose();
        b.BlocksInUse.Should().Be(3, "x, wrong and y; the twice-disposed tensor returned its block once");
    }

    [Fact]
    public void Kernel_versions_come_from_the_environment_and_name_the_kernel_file()
    {
        KernelVersions.From(_ => null).Should().Be(KernelVersions.Default);
        KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_conv2d" ? "1" : null).Conv2d.Should().Be(1);
        FluentActions.Invoking(() => KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_conv2d" ? "9" : null))
            .Should().Throw<DiffusionException>().WithMessage("DIFFUSION_KERNEL_VERSION_conv2d=9 is not a version of kernels/Conv2d.cs*");
        FluentActions.Invoking(() => KernelVersions.From(v => v == "DIFFUSION_KERNEL_VERSION_group_norm" ? "x" : null))
            .Should().Throw<DiffusionException>().WithMessage("*kernels/GroupNorm.cs*");
        FluentActions.Invoking(() => KernelVersions.Simple.With("linear", 0)).Should().Throw<DiffusionException>();
        KernelVersions.Default.UsesHalfPrecision.Should().BeFalse("half precision is never the default");
    }

    /// <summary>DDIM η = 0 on the emulated device stays within 1e-4 (absolute) of the CPU backend over the whole run.</summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void Ddim_matches_the_cpu_backend_within_1e_4(string device)
    {
        var golden = Golden.Load("unet_tiny");
        HostTensor Run(IBackend backend)
        {
            using var net = UNet2D.Create(golden.Config, golden.Weights, backend);
            return Pipeline.Generate(new GenerateOptions
            {
                Model = net,
                SchedulerConfig = SchedulerConfig.Default,
                Sampler = SamplerKind.Ddim,
                Steps = 3,
                Seed = 11,
                Batch = 1,
            }, progress: null, TestContext.Current.CancellationToken);
        }

        using var gpu = Open(device);
        int blocksBefore = gpu.BlocksInUse;
        var got = Run(gpu);
        using var cpu = new CpuBackend();
        var expected = Run(cpu);

        double worst = got.Data.Zip(expected.Data).Max(p => Math.Abs(p.First - p.Second));
        TestContext.Current.SendDiagnosticMessage($"DDIM-3 on {device}: max |gpu − cpu| = {worst:0.0e+0}");
        worst.Should().BeLessThanOrEqualTo(1e-4);
        gpu.BlocksInUse.Should().Be(blocksBefore, "the model's weights and every sampling buffer returned their memory");
    }

    /// <summary>
    /// One recording of (U-Net forward + sampler step) replayed for every DDIM step, with each step's timestep and
    /// coefficients written into device tensors: the trajectory equals the eagerly issued one. On the emulated device
    /// the replay re-issues the ops in recording mode, which exercises the same device-tensor path.
    /// </summary>
    [Theory]
    [MemberData(nameof(Devices))]
    public void A_recorded_step_replays_every_step_of_a_ddim_run(string device)
    {
        var golden = Golden.Load("unet_tiny");
        using var b = Open(device);
        using var net = UNet2D.Create(golden.Config, golden.Weights, b);
        var scheduler = Scheduler.Create(SamplerKind.Ddim, SchedulerConfig.Default, 2);
        int[] shape = [1, .. golden.Sample.Shape[1..]];
        float[] start = Random(12, HostTensor.Count(shape), -1f, 1f);

        float[] Eager()
        {
            using var x = b.Upload(start, shape);
            using var m = b.Allocate(shape);
            for (int i = 0; i < scheduler.StepCount; i++)
            {
                var plan = scheduler.Step(i);
                net.Forward(x, Enumerable.Repeat(plan.Timestep, shape[0]).ToArray(), m);
                b.SamplerStep(x, m, null, null, null, plan.Coefficients, x);
            }
            return Download(b, x);
        }

        float[] Replayed()
        {
            using var x = b.Upload(start, shape);
            using var m = b.Allocate(shape);
            using var initial = b.Upload(start, shape);
            using var zero = b.Upload(new float[start.Length], shape);
            var first = scheduler.Step(0);
            using var graph = b.CaptureGraph(() =>
            {
                net.Forward(x, Enumerable.Repeat(first.Timestep, shape[0]).ToArray(), m);
                b.SamplerStep(x, m, null, null, null, first.Coefficients, x);
            });
            b.Add(initial, zero, x); // the capture's warm-up run stepped x once: start again
            for (int i = 0; i < scheduler.StepCount; i++)
            {
                var plan = scheduler.Step(i);
                graph.Replay(Enumerable.Repeat(plan.Timestep, shape[0]).ToArray(), plan.Coefficients);
            }
            return Download(b, x);
        }

        float[] eager = Eager();
        float[] replayed = Replayed();
        eager.Zip(start).Count(p => p.First != p.Second).Should().BeGreaterThan(eager.Length / 2, "the steps changed the sample");
        replayed.Should().Equal(eager);
    }
}

public sealed class GpuGraphTests
{
    [Fact]
    public void A_replay_refuses_timesteps_it_was_not_recorded_for()
    {
        using var b = GpuBackend.CreateEmulated(KernelVersions.Default);
        using var one = b.Allocate(1, 32);
        using var two = b.Allocate(2, 32);
        using var graph = b.CaptureGraph(() => b.TimestepEmbedding([10f], false, 1f, one));

        graph.Replay([20f], default);
        Download(b, one).Should().Equal(Embedding(b, 20f), "the replay embedded the new timestep");
        FluentActions.Invoking(() => graph.Replay([1f, 2f], default)).Should().Throw<BackendArgumentException>().WithMessage("*recorded for 1 timesteps*");
        b.TimestepEmbedding([1f, 2f], false, 1f, two);
        FluentActions.Invoking(() => graph.Replay([1f], default)).Should().Throw<BackendArgumentException>().WithMessage("*capture it again*");
    }

    private static float[] Embedding(GpuBackend b, float t)
    {
        using var y = b.Allocate(1, 32);
        b.TimestepEmbedding([t], false, 1f, y);
        return Download(b, y);
    }
}

public sealed class DevicePeakTests
{
    [Fact]
    public void Device_peaks_follow_the_datasheets_and_are_unknown_without_clocks()
    {
        // H100 SXM: 132 SMs at 1.98 GHz, HBM3 at 2.619 GHz on a 5120-bit bus.
        var h100 = DevicePeak.For(90, 132, 1_980_000, 2_619_000, 5120);
        h100.Float32Flops.Should().BeApproximately(66.9e12, 0.1e12);
        h100.Float16TensorFlops.Should().BeApproximately(1070e12, 1e12);
        h100.BytesPerSecond.Should().BeApproximately(3.35e12, 0.01e12);
        // A100: 108 SMs at 1.41 GHz: 19.5 TFLOP/s float32, 312 TFLOP/s fp16 tensor.
        var a100 = DevicePeak.For(80, 108, 1_410_000, 0, 0);
        a100.Float32Flops.Should().BeApproximately(19.5e12, 0.1e12);
        a100.Float16TensorFlops.Should().BeApproximately(312e12, 1e12);
        a100.BytesPerSecond.Should().BeNull("no memory clock was reported");
        DevicePeak.For(75, 40, 0, 0, 0).Float32Flops.Should().BeNull("no clock was reported");
    }
}
