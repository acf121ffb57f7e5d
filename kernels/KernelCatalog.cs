// KernelCatalog — every kernel entry point of this project, with its op, version and a one-line description.
// The GPU backend picks versions from it (DIFFUSION_KERNEL_VERSION_<op>=N; the default is the newest float32
// version, half-precision versions are opt-in); the PTX gate and `diffuse kernels` enumerate it to compile every
// entry point, generic instantiations included, without launching anything. A kernel missing here is never
// compiled by the gate, so adding a version means adding its row.

using System.Reflection;
using ILGPU;
using Half = ILGPU.Half;

namespace Diffusion.Kernels.Gpu;

/// <summary>How a kernel is launched. Implicit: (Index1D, params, views...), one thread per index, grouping left
/// to ILGPU. Explicit: (params, views...) launched with a KernelConfig (grid, group, dynamic shared memory); the
/// kernel reads Grid/Group itself.</summary>
public enum KernelGrouping
{
    Implicit,
    Explicit,
}

/// <summary>One entry point: <paramref name="Op"/> is the DIFFUSION_KERNEL_VERSION_ suffix ("conv2d") or, for
/// ops with a single version, the op's own name ("silu"); Half marks versions that round inputs to fp16 (opt-in).</summary>
public sealed record KernelEntry(string Op, int Version, MethodInfo Method, string Description, KernelGrouping Grouping = KernelGrouping.Implicit,
    bool Half = false)
{
    /// <summary>"Conv2d.Version1" or, for a generic instantiation, "Conv2d.Version2&lt;Tile64&gt;".</summary>
    public string Name => Method.DeclaringType!.Name + "." + Method.Name +
        (Method.IsGenericMethod ? "<" + string.Join(", ", Method.GetGenericArguments().Select(a => a.Name)) + ">" : "");
}

public static class KernelCatalog
{
    /// <summary>The ops whose version can be chosen; each has at least version 1.</summary>
    public static IReadOnlyList<string> VersionedOps { get; } = ["conv2d", "group_norm", "attention", "linear"];

    public static IReadOnlyList<KernelEntry> Entries { get; } =
    [
        new("conv2d", 1, Of<Action<Index1D, Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version1),
            "one thread per output value, the CPU loop nest"),
        new("conv2d", 2, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version2<Conv2dTile64, KernelSize1>),
            "implicit GEMM, 64×64 tile in shared memory, 4×4 per thread, K = 1", KernelGrouping.Explicit),
        new("conv2d", 2, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version2<Conv2dTile64, KernelSize3>),
            "implicit GEMM, 64×64 tile in shared memory, 4×4 per thread, K = 3", KernelGrouping.Explicit),
        new("conv2d", 2, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version2<Conv2dTile64, KernelSizeAny>),
            "implicit GEMM, 64×64 tile in shared memory, 4×4 per thread, any K", KernelGrouping.Explicit),
        new("conv2d", 2, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version2<Conv2dTile32, KernelSize1>),
            "implicit GEMM, 32×64 tile in shared memory, 4×4 per thread, K = 1", KernelGrouping.Explicit),
        new("conv2d", 2, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version2<Conv2dTile32, KernelSize3>),
            "implicit GEMM, 32×64 tile in shared memory, 4×4 per thread, K = 3", KernelGrouping.Explicit),
        new("conv2d", 2, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version2<Conv2dTile32, KernelSizeAny>),
            "implicit GEMM, 32×64 tile in shared memory, 4×4 per thread, any K", KernelGrouping.Explicit),
        new("conv2d", 3, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version3<KernelSize1>),
            "implicit GEMM on tensor cores (mma.sync m16n8k16), half inputs, 64×64 tile, K = 1", KernelGrouping.Explicit, Half: true),
        new("conv2d", 3, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version3<KernelSize3>),
            "implicit GEMM on tensor cores (mma.sync m16n8k16), half inputs, 64×64 tile, K = 3", KernelGrouping.Explicit, Half: true),
        new("conv2d", 3, Of<Action<Conv2dParams, ArrayView<float>, ArrayView<Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Conv2d.Version3<KernelSizeAny>),
            "implicit GEMM on tensor cores (mma.sync m16n8k16), half inputs, 64×64 tile, any K", KernelGrouping.Explicit, Half: true),
        new("group_norm", 1, Of<Action<Index1D, GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(GroupNorm.Version1),
            "one thread per (image, group), three serial passes"),
        new("group_norm", 2, Of<Action<GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(GroupNorm.Version2),
            "one block per (image, group), warp-shuffle block sums, SiLU fused", KernelGrouping.Explicit),
        new("attention", 1, Of<Action<Index1D, AttentionParams, ArrayView<float>, ArrayView<float>>>(Attention.Version1),
            "one thread per output value, two passes over the keys"),
        new("attention", 2, Of<Action<AttentionParams, ArrayView<float>, ArrayView<float>>>(Attention.Version2<AttentionTile16>),
            "flash attention, 16 queries per block, online softmax in shared memory", KernelGrouping.Explicit),
        new("attention", 2, Of<Action<AttentionParams, ArrayView<float>, ArrayView<float>>>(Attention.Version2<AttentionTile32>),
            "flash attention, 32 queries per block, online softmax in shared memory", KernelGrouping.Explicit),
        new("attention", 3, Of<Action<AttentionParams, ArrayView<float>, ArrayView<float>>>(Attention.Version3),
            "flash attention on tensor cores (mma.sync m16n8k16), half inputs, 64 queries × 64 columns per block", KernelGrouping.Explicit, Half: true),
        new("linear", 1, Of<Action<Index1D, LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Linear.Version1),
            "one thread per output, a row of W each"),
        new("linear", 2, Of<Action<LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Linear.Version2),
            "one warp per output, coalesced rows of W, shuffle sum", KernelGrouping.Explicit),
        new("silu", 1, Of<Action<Index1D, ElementwiseParams, ArrayView<float>, ArrayView<float>>>(Elementwise.SiLU), "x·σ(x)"),
        new("add", 1, Of<Action<Index1D, ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Elementwise.Add), "(a + b)·scale"),
        new("upsample2x", 1, Of<Action<Index1D, ElementwiseParams, ArrayView<float>, ArrayView<float>>>(Elementwise.Upsample2x), "nearest neighbour ×2"),
        new("concat", 1, Of<Action<Index1D, ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(Elementwise.Concat), "channel concatenation"),
        new("timestep_embedding", 1, Of<Action<Index1D, TimestepEmbeddingParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(TimestepEmbedding.Version1),
            "sinusoidal features, float64 sin/cos"),
        new("sampler_step", 1, Of<Action<Index1D, SamplerStepParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(SamplerStep.Version1),
            "the fused scheduler update"),
    ];

    /// <summary>The entry points of one version of an op (several when a version has specialisations per tile or kernel size).</summary>
    public static IEnumerable<KernelEntry> Of(string op, int version) => Entries.Where(e => e.Op == op && e.Version == version);

    /// <summary>The highest version of <paramref name="op"/>.</summary>
    public static int Latest(string op) => Versions(op).Max(e => e.Version);

    /// <summary>The newest version that keeps float32 accuracy: what the backend runs unless told otherwise.</summary>
    public static int DefaultVersion(string op) => Versions(op).Where(e => !e.Half).Max(e => e.Version);

    /// <summary>True when <paramref name="version"/> of <paramref name="op"/> rounds its inputs to half precision.</summary>
    public static bool IsHalf(string op, int version) => Of(op, version).Any(e => e.Half);

    private static IEnumerable<KernelEntry> Versions(string op)
    {
        var found = Entries.Where(e => e.Op == op).ToList();
        return found.Count > 0 ? found : throw new ArgumentException($"no kernel is registered for '{op}'", nameof(op));
    }

    private static MethodInfo Of<TDelegate>(TDelegate kernel) where TDelegate : Delegate => kernel.Method;
}
