namespace Diffusion.Kernels.Backends;

/// <summary>
/// How close to a float64 reference each op's float32 kernels must come, as <c>max |got − ref| / max |ref|</c>, on
/// every backend: the tests hold every kernel to it, and <c>diffuse bench</c> allows twice it between a backend and
/// the CPU backend (both sides round). Why these numbers: float32 dot products of up to a few thousand terms
/// (conv2d, linear, attention) stay near 1e-6, so 1e-5 fails on any indexing mistake (errors of order 1) yet passes
/// honest rounding; the elementwise ops round once or twice (1e-6). On a GPU the same kernels run with PTX's
/// approximate exp (ex2.approx, relative error ~2⁻²²; SiLU, the softmax, group norm's SiLU), sqrt and division,
/// and ptxas may fuse a multiply and an add: that moves results by a few float32 ulps, well inside these bounds —
/// stated, not yet measured, as no GPU has been available. The timestep embedding evaluates sin/cos itself in
/// float64 (kernels/TimestepEmbedding.cs) so its argument up to 1000 costs nothing on the GPU either.
/// Half-precision (tensor-core) versions round inputs to 11 significant bits: <see cref="Half"/>.
/// </summary>
public static class OpTolerance
{
    public const double Conv2d = 1e-5;
    public const double GroupNorm = 1e-5;
    public const double Attention = 1e-5;
    public const double Linear = 1e-5;

    /// <summary>SiLU, Add, the timestep embedding and the sampler step: one or two roundings per value.</summary>
    public const double Elementwise = 1e-6;

    /// <summary>Upsample2x and Concat copy values: exact.</summary>
    public const double Copy = 0;

    /// <summary>Half inputs, float32 accumulation: unit roundoff 2⁻¹¹ ≈ 4.9e-4 per input, ~5e-4 on long dot products.</summary>
    public const double Half = 3e-3;

    /// <summary>The float32 tolerance of <paramref name="op"/> by its kernel name ("conv2d", "silu", ...).</summary>
    public static double Float32(string op) => op switch
    {
        "conv2d" => Conv2d,
        "group_norm" => GroupNorm,
        "attention" => Attention,
        "linear" => Linear,
        "silu" or "add" or "timestep_embedding" or "sampler_step" => Elementwise,
        "upsample2x" or "concat" => Copy,
        _ => throw new ArgumentException($"no tolerance is stated for '{op}'", nameof(op)),
    };
}

/// <summary>
/// One op on one named shape (batch 1 is the shape; every cost takes the batch): its parameters, the FLOPs and the
/// bytes one call must move, how many values it writes, and its tolerance. <see cref="OpCases"/> lists the U-Net's;
/// the op tests run them on every backend, <c>diffuse bench</c> times them, the BenchmarkDotNet project reads them.
/// </summary>
public abstract record OpShape(string Op, string Name)
{
    /// <summary>The shape's numbers by name, as bench/cudnn/compare.py reads them.</summary>
    public abstract IReadOnlyDictionary<string, object> Parameters { get; }

    /// <summary>True when FLOPs, not bytes, bound the op (its "% of peak" is against the FLOP rate).</summary>
    public virtual bool ComputeBound => false;

    public abstract double Flops(int batch);

    public abstract double Bytes(int batch);

    public abstract long Outputs(int batch);

    public double Tolerance => OpTolerance.Float32(Op);

    public override string ToString() => Name;
}

public sealed record Conv2dShape(string Name, Conv2dSpec Spec, int Size) : OpShape("conv2d", Name)
{
    public override IReadOnlyDictionary<string, object> Parameters => new Dictionary<string, object>
    {
        ["cin"] = Spec.InChannels, ["cout"] = Spec.OutChannels, ["k"] = Spec.Kernel, ["stride"] = Spec.Stride,
        ["padBegin"] = Spec.PadBegin, ["padEnd"] = Spec.PadEnd, ["h"] = Size, ["w"] = Size,
    };

    public override bool ComputeBound => true;

    public override double Flops(int batch) => batch * Spec.Flops(Size, Size);

    public override double Bytes(int batch)
    {
        int o = Spec.OutputSize(Size);
        return 4.0 * ((double)batch * Spec.InChannels * Size * Size + (double)batch * Spec.OutChannels * o * o
            + (double)Spec.OutChannels * Spec.InChannels * Spec.Kernel * Spec.Kernel);
    }

    public override long Outputs(int batch) => (long)batch * Spec.OutChannels * Spec.OutputSize(Size) * Spec.OutputSize(Size);
}

public sealed record GroupNormShape(string Name, int Channels, int Size, int Groups = 32, float Eps = 1e-6f, bool Silu = true) : OpShape("group_norm", Name)
{
    public override IReadOnlyDictionary<string, object> Parameters => new Dictionary<string, object>
    {
        ["c"] = Channels, ["h"] = Size, ["w"] = Size, ["groups"] = Groups, ["eps"] = Eps, ["silu"] = Silu,
    };

    public override double Flops(int batch) => 0;

    public override double Bytes(int batch) => 2.0 * 4 * batch * Channels * Size * Size;

    public override long Outputs(int batch) => (long)batch * Channels * Size * Size;
}

public sealed record AttentionShape(string Name, int Channels, int Heads, int Size) : OpShape("attention", Name)
{
    public override IReadOnlyDictionary<string, object> Parameters => new Dictionary<string, object>
    {
        ["c"] = Channels, ["heads"] = Heads, ["h"] = Size, ["w"] = Size,
    };

    public override bool ComputeBound => true;

    /// <summary>q·kᵀ and softmax·v: 2·T²·d each per head.</summary>
    public override double Flops(int batch)
    {
        double tokens = Size * Size;
        return batch * 4.0 * tokens * tokens * Channels;
    }

    public override double Bytes(int batch) => 4.0 * batch * 4 * Channels * Size * Size;

    public override long Outputs(int batch) => (long)batch * Channels * Size * Size;
}

public sealed record LinearShape(string Name, int InFeatures, int OutFeatures, bool SiluInput) : OpShape("linear", Name)
{
    public override IReadOnlyDictionary<string, object> Parameters => new Dictionary<string, object>
    {
        ["in"] = InFeatures, ["out"] = OutFeatures, ["siluInput"] = SiluInput,
    };

    public override double Flops(int batch) => 2.0 * batch * InFeatures * OutFeatures;

    /// <summary>At U-Net batch sizes the weight matrix dominates: these layers are bandwidth-bound.</summary>
    public override double Bytes(int batch) => 4.0 * ((double)InFeatures * OutFeatures + (double)batch * (InFeatures + OutFeatures));

    public override long Outputs(int batch) => (long)batch * OutFeatures;
}

public sealed record SamplerStepShape(string Name, int Channels, int Size) : OpShape("sampler_step", Name)
{
    public override IReadOnlyDictionary<string, object> Parameters => new Dictionary<string, object>
    {
        ["c"] = Channels, ["h"] = Size, ["w"] = Size,
    };

    public override double Flops(int batch) => 0;

    /// <summary>Reads sample, model output, noise and previous x0; writes x0 and the next sample.</summary>
    public override double Bytes(int batch) => 6.0 * 4 * batch * Channels * Size * Size;

    public override long Outputs(int batch) => 2L * batch * Channels * Size * Size;
}

/// <summary>The ops of the DDPM CIFAR-10 U-Net (google/ddpm-cifar10-32), named for what they are in the network.</summary>
public static class OpCases
{
    public static IReadOnlyList<OpShape> Cifar10UNet { get; } =
    [
        new Conv2dShape("conv_in 3→128 @32×32", Conv2dSpec.Same3x3(3, 128), 32),
        new Conv2dShape("3×3 128→128 @32×32", Conv2dSpec.Same3x3(128, 128), 32),
        new Conv2dShape("3×3 128→256 @16×16", Conv2dSpec.Same3x3(128, 256), 16),
        new Conv2dShape("3×3 256→256 @16×16", Conv2dSpec.Same3x3(256, 256), 16),
        new Conv2dShape("3×3 256→256 @8×8", Conv2dSpec.Same3x3(256, 256), 8),
        new Conv2dShape("3×3 256→256 @4×4", Conv2dSpec.Same3x3(256, 256), 4),
        new Conv2dShape("3×3 512→256 @4×4 (up concat)", Conv2dSpec.Same3x3(512, 256), 4),
        new Conv2dShape("3×3 384→128 @32×32 (up concat)", Conv2dSpec.Same3x3(384, 128), 32),
        new Conv2dShape("down 3×3/2 128→128 32→16", new Conv2dSpec(128, 128, 3, 2, 0, 1), 32),
        new Conv2dShape("down 3×3/2 256→256 16→8", new Conv2dSpec(256, 256, 3, 2, 0, 1), 16),
        new Conv2dShape("down 3×3/2 256→256 8→4", new Conv2dSpec(256, 256, 3, 2, 0, 1), 8),
        new Conv2dShape("shortcut 1×1 128→256 @16×16", Conv2dSpec.Pointwise(128, 256), 16),
        new Conv2dShape("shortcut 1×1 384→128 @32×32", Conv2dSpec.Pointwise(384, 128), 32),
        new Conv2dShape("shortcut 1×1 512→256 @8×8", Conv2dSpec.Pointwise(512, 256), 8),
        new Conv2dShape("qkv 1×1 256→768 @16×16", Conv2dSpec.Pointwise(256, 768), 16),
        new Conv2dShape("conv_out 3×3 128→3 @32×32", Conv2dSpec.Same3x3(128, 3), 32),
        new AttentionShape("16×16 attention, 256 ch, 1 head", 256, 1, 16),
        new GroupNormShape("GN+SiLU 128 ch @32×32", 128, 32),
        new GroupNormShape("GN+SiLU 384 ch @32×32", 384, 32),
        new GroupNormShape("GN+SiLU 256 ch @16×16", 256, 16),
        new GroupNormShape("GN+SiLU 512 ch @8×8", 512, 8),
        new GroupNormShape("GN+SiLU 256 ch @4×4", 256, 4),
        new LinearShape("time linear_1 128→512", 128, 512, false),
        new LinearShape("time linear_2 SiLU 512→512", 512, 512, true),
        new LinearShape("time_emb_proj SiLU 512→256", 512, 256, true),
        new SamplerStepShape("sampler step 3×32×32", 3, 32),
    ];
}
