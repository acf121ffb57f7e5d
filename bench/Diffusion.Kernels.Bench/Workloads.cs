using Diffusion.Kernels.Backends;

namespace Diffusion.Kernels.Bench;

/// <summary>A benchmarked shape that knows how much work one call does, so results print as throughput.</summary>
public interface IWorkload
{
    /// <summary>Floating-point operations of one call (0 for memory-bound ops).</summary>
    double Flops { get; }

    /// <summary>Bytes one call must at least read and write.</summary>
    double Bytes { get; }
}

/// <summary>A convolution of the ddpm-cifar10-32 U-Net, named by what it is in the network.</summary>
public sealed record ConvWorkload(string Name, Conv2dSpec Spec, int Batch, int Size) : IWorkload
{
    public double Flops => Batch * Spec.Flops(Size, Size);

    public double Bytes => 4.0 * Batch * (Spec.InChannels * Size * Size + Spec.OutChannels * Spec.OutputSize(Size) * Spec.OutputSize(Size));

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>Self-attention over the H·W tokens of one U-Net level.</summary>
public sealed record AttentionWorkload(string Name, int Batch, int Channels, int Heads, int Size) : IWorkload
{
    public int Tokens => Size * Size;

    /// <summary>q·kᵀ and p·v: two T×T×C products per image.</summary>
    public double Flops => 4.0 * Batch * Tokens * Tokens * Channels;

    public double Bytes => 4.0 * Batch * 4 * Channels * Tokens;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>A group norm (+SiLU) of one U-Net level: memory-bound, reported in GB/s.</summary>
public sealed record GroupNormWorkload(string Name, int Batch, int Channels, int Size) : IWorkload
{
    public double Flops => 0;

    public double Bytes => 2.0 * 4 * Batch * Channels * Size * Size;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>The shapes of google/ddpm-cifar10-32: channels (128, 256, 256, 256) at 32, 16, 8 and 4 pixels.</summary>
public static class DdpmCifar
{
    public static readonly int[] Batches = [1, 8];

    public static IEnumerable<ConvWorkload> Convs() =>
        from batch in Batches
        from conv in new (string Name, Conv2dSpec Spec, int Size)[]
        {
            ("3x3 conv 3->128 at 32x32 (DDPM CIFAR conv_in)", Conv2dSpec.Same3x3(3, 128), 32),
            ("3x3 conv 128->128 at 32x32 (DDPM CIFAR level 0)", Conv2dSpec.Same3x3(128, 128), 32),
            ("3x3 stride-2 conv 128->128 at 32x32 (DDPM CIFAR downsample 0)", new Conv2dSpec(128, 128, 3, 2, 0, 1), 32),
            ("3x3 conv 128->256 at 16x16 (DDPM CIFAR level 1 entry)", Conv2dSpec.Same3x3(128, 256), 16),
            ("1x1 conv 128->256 at 16x16 (DDPM CIFAR level 1 shortcut)", Conv2dSpec.Pointwise(128, 256), 16),
            ("1x1 conv 256->768 at 16x16 (DDPM CIFAR attention q, k, v)", Conv2dSpec.Pointwise(256, 768), 16),
            ("1x1 conv 256->128 at 32x32 (DDPM CIFAR up level 0 shortcut)", Conv2dSpec.Pointwise(256, 128), 32),
            ("3x3 conv 256->256 at 16x16 (DDPM CIFAR level 1)", Conv2dSpec.Same3x3(256, 256), 16),
            ("3x3 conv 256->256 at 8x8 (DDPM CIFAR level 2)", Conv2dSpec.Same3x3(256, 256), 8),
            ("3x3 conv 256->256 at 4x4 (DDPM CIFAR level 3 and mid)", Conv2dSpec.Same3x3(256, 256), 4),
            ("3x3 conv 512->256 at 8x8 (DDPM CIFAR up level 2 skip concat)", Conv2dSpec.Same3x3(512, 256), 8),
            ("3x3 conv 384->128 at 32x32 (DDPM CIFAR up level 0 skip concat)", Conv2dSpec.Same3x3(384, 128), 32),
            ("3x3 conv 128->3 at 32x32 (DDPM CIFAR conv_out)", Conv2dSpec.Same3x3(128, 3), 32),
        }
        select new ConvWorkload(conv.Name, conv.Spec, batch, conv.Size);

    public static IEnumerable<AttentionWorkload> Attentions() =>
        from batch in Batches
        from a in new (string Name, int Size)[]
        {
            ("attention 256 tokens x 256 channels at 16x16 (DDPM CIFAR level 1)", 16),
            ("attention 64 tokens x 256 channels at 8x8", 8),
            ("attention 16 tokens x 256 channels at 4x4 (DDPM CIFAR mid block)", 4),
        }
        select new AttentionWorkload(a.Name, batch, 256, 1, a.Size);

    public static IEnumerable<GroupNormWorkload> GroupNorms() =>
        from batch in Batches
        from g in new (string Name, int Channels, int Size)[]
        {
            ("group norm + SiLU 128 channels at 32x32 (DDPM CIFAR level 0)", 128, 32),
            ("group norm + SiLU 256 channels at 16x16 (DDPM CIFAR level 1)", 256, 16),
        }
        select new GroupNormWorkload(g.Name, batch, g.Channels, g.Size);

    public static IEnumerable<ForwardWorkload> Forwards() =>
        from batch in Batches select new ForwardWorkload("U-Net forward (DDPM CIFAR-10 32x32)", batch);
}

/// <summary>One whole U-Net forward (every op, as UNet2D issues them) at a batch size.</summary>
public sealed record ForwardWorkload(string Name, int Batch) : IWorkload
{
    /// <summary>
    /// Counted, not estimated: the FLOPs of every conv, linear and attention call of one batch-1 forward, convs
    /// counted as direct convolutions (2·Cout·Cin·9 per pixel). The Winograd path does 16/36 of those multiplies,
    /// so its rates are direct-equivalent and may exceed the FMA peak.
    /// </summary>
    private static readonly Lazy<double> s_flopsPerImage = new(() =>
    {
        using var profiler = new ProfilingBackend(new Backends.Cpu.CpuBackend(1));
        using (var fixture = new ForwardFixture(profiler, 1)) fixture.Run();
        return profiler.Stats.Values.Sum(s => s.Flops);
    });

    public double Flops => Batch * s_flopsPerImage.Value;

    public double Bytes => 0;

    public override string ToString() => $"{Name}, batch {Batch}";
}
