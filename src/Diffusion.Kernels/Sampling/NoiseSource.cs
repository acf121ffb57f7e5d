using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Sampling;

/// <summary>Which random stream a seed drives, named as on the command line.</summary>
public enum RngKind
{
    /// <summary>"torch": PyTorch's CPU generator, drawn as diffusers' pipelines draw (<see cref="TorchNoise"/>).</summary>
    Torch,

    /// <summary>"splitmix": our own named streams (<see cref="SplitMixNoise"/>), reproducible without torch.</summary>
    SplitMix,
}

/// <summary>
/// The Gaussian noise of one generation: the initial sample x_T of the whole batch, then the fresh noise of each
/// step that asks for it (<see cref="SamplerStepPlan.NeedsNoise"/>), each as one (B, C, H, W) tensor in row-major
/// order. The sampling loop asks in that order, once per step, whatever the chunking, so a stream whose values
/// depend on the order of draws (torch's) gives the same numbers at any chunk size. Drawn on the host, so a seed
/// gives the same values on every backend.
/// </summary>
public abstract class NoiseSource(ulong seed)
{
    public ulong Seed { get; } = seed;

    public abstract RngKind Kind { get; }

    /// <summary>Unit-variance x_T for the whole batch.</summary>
    public abstract float[] Initial(int count);

    /// <summary>Unit-variance noise for step <paramref name="step"/> (0-based) of the whole batch.</summary>
    public abstract float[] Step(int step, int count);

    public static NoiseSource Create(RngKind kind, ulong seed) => kind switch
    {
        RngKind.Torch => new TorchNoise(seed),
        RngKind.SplitMix => new SplitMixNoise(seed),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Parses the command-line name: torch, splitmix.</summary>
    public static bool TryParseKind(string text, out RngKind kind)
    {
        kind = text.ToLowerInvariant() switch
        {
            "torch" => RngKind.Torch,
            "splitmix" => RngKind.SplitMix,
            _ => (RngKind)(-1),
        };
        return Enum.IsDefined(kind);
    }

    public static string NameOf(RngKind kind) => kind switch
    {
        RngKind.Torch => "torch",
        RngKind.SplitMix => "splitmix",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}

/// <summary>
/// diffusers' noise for <c>generator=torch.manual_seed(seed)</c>: one <see cref="TorchCpuGenerator"/> for the
/// whole run, x_T = <c>torch.randn((B, C, H, W))</c> (image b is the b-th slice), then one whole-batch
/// <c>randn</c> per step that draws, in step order. diffusers draws exactly there: DDPM for t &gt; 0 (after the
/// mean, which consumes no random numbers), DDIM at every step iff η &gt; 0, Euler ancestral at every step, and
/// DPM-Solver++(2M) never. The step index is not used: the stream is a sequence, so its values depend on how many
/// draws came before, and the first image of a batch is not the image the same seed gives alone.
/// </summary>
public sealed class TorchNoise(ulong seed) : NoiseSource(seed)
{
    private readonly TorchCpuGenerator _generator = new(seed);

    public override RngKind Kind => RngKind.Torch;

    public override float[] Initial(int count) => _generator.Randn(count);

    public override float[] Step(int step, int count) => _generator.Randn(count);
}

/// <summary>
/// Our own noise, bit-identical with <c>weights/synthetic_weights.py</c> and so with the sampler goldens that
/// <c>weights/make_goldens.py</c> writes without torch's generator: <see cref="SyntheticWeights.Gaussian"/>
/// (splitmix64 keyed by FNV-1a of a stream name, then Box–Muller), one named stream per use:
/// <c>"x_init"</c> for x_T and <c>"noise/{i}"</c> for step i. Streams are independent of each other and of the
/// order of draws, so image b of a batch always takes elements [b·CHW, (b+1)·CHW) of each and the first image of
/// a batch equals the single image generated with the same seed.
/// </summary>
public sealed class SplitMixNoise(ulong seed) : NoiseSource(seed)
{
    public override RngKind Kind => RngKind.SplitMix;

    public override float[] Initial(int count) => SyntheticWeights.Gaussian("x_init", count, Seed);

    public override float[] Step(int step, int count) => SyntheticWeights.Gaussian($"noise/{step}", count, Seed);
}
