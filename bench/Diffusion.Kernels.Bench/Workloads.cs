using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Sampling;

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

/// <summary>
/// A group norm of one U-Net level, with SiLU fused (resnets, conv_norm_out) or without (attention blocks), in GB/s:
/// the plain one shows the memory-bound part, the fused one what an exp per element adds.
/// </summary>
public sealed record GroupNormWorkload(string Name, int Batch, int Channels, int Size, bool SiLU) : IWorkload
{
    public double Flops => 0;

    public double Bytes => 2.0 * 4 * Batch * Channels * Size * Size;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>
/// A linear layer on the time embedding: one row per image against the whole weight matrix, so at these batch sizes
/// it is bound by streaming the weights (<see cref="Bytes"/>) rather than by its FMAs; GB/s = GFLOP/s · Bytes / Flops.
/// </summary>
public sealed record LinearWorkload(string Name, int Batch, int InFeatures, int OutFeatures, bool SiluInput) : IWorkload
{
    public double Flops => 2.0 * Batch * InFeatures * OutFeatures;

    public double Bytes => 4.0 * ((double)InFeatures * OutFeatures + OutFeatures + Batch * (InFeatures + OutFeatures));

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>y = x·σ(x) over one activation: read once, written once.</summary>
public sealed record SiLUWorkload(string Name, int Batch, int Channels, int Size) : IWorkload
{
    public double Flops => 0;

    public double Bytes => 2.0 * 4 * Batch * Channels * Size * Size;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>y = (a + b)·scale; with SameInput a and b are one tensor, (x + x)·s/2, read once.</summary>
public sealed record AddWorkload(string Name, int Batch, int Channels, int Size, bool SameInput) : IWorkload
{
    public double Flops => 0;

    public double Bytes => (SameInput ? 2.0 : 3.0) * 4 * Batch * Channels * Size * Size;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>An up block's channel concat of its input and a skip: both read once, the joined tensor written once.</summary>
public sealed record ConcatWorkload(string Name, int Batch, int Channels, int SkipChannels, int Size) : IWorkload
{
    public double Flops => 0;

    public double Bytes => 2.0 * 4 * Batch * (Channels + SkipChannels) * Size * Size;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>Nearest-neighbour ×2 upsample of an up block's output: reads C·H·W values and writes four times as many.</summary>
public sealed record UpsampleWorkload(string Name, int Batch, int Channels, int Size) : IWorkload
{
    public double Flops => 0;

    public double Bytes => 5.0 * 4 * Batch * Channels * Size * Size;

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>
/// The sinusoidal features of one timestep per image. Its only memory traffic is the timesteps in and the features
/// out, so its GB/s mostly says how fast the scalar exp, sin and cos run.
/// </summary>
public sealed record TimestepEmbeddingWorkload(string Name, int Batch, int Dim) : IWorkload
{
    public double Flops => 0;

    public double Bytes => 4.0 * Batch * (Dim + 1);

    public override string ToString() => $"{Name}, batch {Batch}";
}

/// <summary>
/// One fused sampler update on the image, with the coefficients a real scheduler plans for that step: sample and
/// model output are read, plus noise and the previous x0 when the plan uses them; x0 and the next sample are written.
/// </summary>
public sealed record SamplerStepWorkload(string Name, int Batch, int Channels, int Size, SamplerStepPlan Plan) : IWorkload
{
    public int[] Shape => [Batch, Channels, Size, Size];

    public double Flops => 0;

    public double Bytes => 4.0 * Batch * Channels * Size * Size * (4 + (Plan.NeedsNoise ? 1 : 0) + (Plan.UsesPreviousX0 ? 1 : 0));

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
            ("3x3 conv 256->128 at 32x32 (DDPM CIFAR up level 0)", Conv2dSpec.Same3x3(256, 128), 32),
            ("3x3 conv 256->256 at 32x32 (DDPM CIFAR up level 1 upsample)", Conv2dSpec.Same3x3(256, 256), 32),
            ("3x3 stride-2 conv 256->256 at 16x16 (DDPM CIFAR downsample 1)", new Conv2dSpec(256, 256, 3, 2, 0, 1), 16),
            ("3x3 conv 384->256 at 16x16 (DDPM CIFAR up level 1 skip concat)", Conv2dSpec.Same3x3(384, 256), 16),
            ("3x3 conv 512->256 at 16x16 (DDPM CIFAR up level 1 skip concat)", Conv2dSpec.Same3x3(512, 256), 16),
            ("3x3 stride-2 conv 256->256 at 8x8 (DDPM CIFAR downsample 2)", new Conv2dSpec(256, 256, 3, 2, 0, 1), 8),
            ("3x3 conv 512->256 at 4x4 (DDPM CIFAR up level 3 skip concat)", Conv2dSpec.Same3x3(512, 256), 4),
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
        from g in new (string Name, int Channels, int Size, bool SiLU)[]
        {
            ("group norm + SiLU 128 channels at 32x32 (DDPM CIFAR level 0)", 128, 32, true),
            ("group norm + SiLU 256 channels at 16x16 (DDPM CIFAR level 1)", 256, 16, true),
            ("group norm 256 channels at 16x16 (DDPM CIFAR level 1 attention)", 256, 16, false),
        }
        select new GroupNormWorkload(g.Name, batch, g.Channels, g.Size, g.SiLU);

    /// <summary>
    /// time_embedding.linear_1 and linear_2 (128 -> 512 -> 512, once per forward) and the time_emb_proj of each of the
    /// 22 resnets (512 -> the resnet's channels: 128 for 5 of them, 256 for 17), which take SiLU of the embedding.
    /// </summary>
    public static IEnumerable<LinearWorkload> Linears() =>
        from batch in Batches
        from l in new (string Name, int In, int Out, bool SiluInput)[]
        {
            ("linear 128->512 (DDPM CIFAR time embedding linear_1)", 128, 512, false),
            ("SiLU + linear 512->512 (DDPM CIFAR time embedding linear_2)", 512, 512, true),
            ("SiLU + linear 512->128 (DDPM CIFAR level 0 time_emb_proj)", 512, 128, true),
            ("SiLU + linear 512->256 (DDPM CIFAR level 1-3 and mid time_emb_proj)", 512, 256, true),
        }
        select new LinearWorkload(l.Name, batch, l.In, l.Out, l.SiluInput);

    /// <summary>
    /// UNet2D never calls SiLU on its own (it rides in group norm and the time linears), so these price the pass that
    /// fusion saves on the two largest activations.
    /// </summary>
    public static IEnumerable<SiLUWorkload> SiLUs() =>
        from batch in Batches
        from s in new (string Name, int Channels, int Size)[]
        {
            ("SiLU 128 channels at 32x32 (DDPM CIFAR level 0 activation, unfused)", 128, 32),
            ("SiLU 256 channels at 16x16 (DDPM CIFAR level 1 activation, unfused)", 256, 16),
        }
        select new SiLUWorkload(s.Name, batch, s.Channels, s.Size);

    /// <summary>
    /// The one Add the pipeline issues is Euler ancestral's input scaling of the sample, (x + x)·s/2; residual adds ride
    /// in the conv epilogue, so the level-0 add prices the pass that fusion saves.
    /// </summary>
    public static IEnumerable<AddWorkload> Adds() =>
        from batch in Batches
        from a in new (string Name, int Channels, int Size, bool SameInput)[]
        {
            ("add x + x on 3x32x32 (DDPM CIFAR sample, Euler ancestral input scale)", 3, 32, true),
            ("add 128 channels at 32x32 (DDPM CIFAR level 0 residual, unfused)", 128, 32, false),
        }
        select new AddWorkload(a.Name, batch, a.Channels, a.Size, a.SameInput);

    public static IEnumerable<ConcatWorkload> Concats() =>
        from batch in Batches
        from c in new (string Name, int Channels, int SkipChannels, int Size)[]
        {
            ("concat 256+128 channels at 32x32 (DDPM CIFAR up level 0 entry)", 256, 128, 32),
            ("concat 128+128 channels at 32x32 (DDPM CIFAR up level 0 skip)", 128, 128, 32),
            ("concat 256+256 channels at 16x16 (DDPM CIFAR up level 1 skip)", 256, 256, 16),
            ("concat 256+256 channels at 8x8 (DDPM CIFAR up level 2 skip)", 256, 256, 8),
            ("concat 256+256 channels at 4x4 (DDPM CIFAR up level 3 skip)", 256, 256, 4),
        }
        select new ConcatWorkload(c.Name, batch, c.Channels, c.SkipChannels, c.Size);

    public static IEnumerable<UpsampleWorkload> Upsamples() =>
        from batch in Batches
        from u in new (string Name, int Size)[]
        {
            ("upsample 2x 256 channels 16x16 -> 32x32 (DDPM CIFAR up level 1 to 0)", 16),
            ("upsample 2x 256 channels 8x8 -> 16x16 (DDPM CIFAR up level 2 to 1)", 8),
            ("upsample 2x 256 channels 4x4 -> 8x8 (DDPM CIFAR up level 3 to 2)", 4),
        }
        select new UpsampleWorkload(u.Name, batch, 256, u.Size);

    public static IEnumerable<TimestepEmbeddingWorkload> TimestepEmbeddings() =>
        from batch in Batches
        select new TimestepEmbeddingWorkload("timestep embedding, 128 sinusoidal features (DDPM CIFAR time_proj)", batch, 128);

    /// <summary>
    /// Mid-trajectory steps of three samplers, one per operand set: DDIM at η = 0 reads sample and model output, DDPM
    /// also fresh noise, DPM-Solver++(2M) at second order also the previous x0; each writes x0 and the next sample.
    /// </summary>
    public static IEnumerable<SamplerStepWorkload> SamplerSteps() =>
        from batch in Batches
        from s in new (string Name, SamplerKind Kind, int Steps)[]
        {
            ("sampler step DDIM eta 0 on 3x32x32 (DDPM CIFAR sample)", SamplerKind.Ddim, 50),
            ("sampler step DDPM (+ noise) on 3x32x32 (DDPM CIFAR sample)", SamplerKind.Ddpm, 1000),
            ("sampler step DPM++(2M) (+ previous x0) on 3x32x32 (DDPM CIFAR sample)", SamplerKind.DpmSolverPlusPlus2M, 20),
        }
        select new SamplerStepWorkload(s.Name, batch, 3, 32, Scheduler.Create(s.Kind, SchedulerConfig.Default, s.Steps).Step(s.Steps / 2));

    public static IEnumerable<ForwardWorkload> Forwards() =>
        from batch in Batches select new ForwardWorkload("U-Net forward (DDPM CIFAR-10 32x32)", batch);
}

/// <summary>One whole U-Net forward (every op, as UNet2D issues them) at a batch size.</summary>
public sealed record ForwardWorkload(string Name, int Batch) : IWorkload
{
    /// <summary>
    /// Counted, not estimated: the FLOPs of every conv, linear and attention call of one batch-1 forward, convs
    /// counted as direct convolutions (2·Cout·Cin·9 per pixel). The Winograd path does 36/144 (F(4×4)) or 16/36
    /// (F(2×2)) of those multiplies, so its rates are direct-equivalent and may exceed the FMA peak.
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
