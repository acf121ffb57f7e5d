using System.Globalization;
using Diffusion.Kernels.Gpu;

namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// Which version of each kernel the GPU backend launches (kernel-lab style: version 1 is the readable one; see the
/// list at the top of each kernels/*.cs file and <see cref="KernelCatalog"/>). DIFFUSION_KERNEL_VERSION_&lt;op&gt;=N
/// selects another, e.g. DIFFUSION_KERNEL_VERSION_conv2d=1. The default is the newest version the catalog holds that
/// keeps float32 accuracy; half-precision (tensor-core) versions are opt-in only, through the variables or
/// <see cref="WithHalfPrecision"/>.
/// </summary>
public sealed record KernelVersions(int Conv2d, int GroupNorm, int Attention, int Linear)
{
    /// <summary>The newest float32 version of each op.</summary>
    public static KernelVersions Default => new(KernelCatalog.DefaultVersion("conv2d"), KernelCatalog.DefaultVersion("group_norm"),
        KernelCatalog.DefaultVersion("attention"), KernelCatalog.DefaultVersion("linear"));

    /// <summary>Version 1 everywhere: the readable kernels.</summary>
    public static KernelVersions Simple { get; } = new(1, 1, 1, 1);

    public static KernelVersions FromEnvironment() => From(Environment.GetEnvironmentVariable);

    public static KernelVersions From(Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        return new(Read(environment, "conv2d"), Read(environment, "group_norm"), Read(environment, "attention"), Read(environment, "linear"));
    }

    /// <summary>The version of <paramref name="op"/> ("conv2d", "group_norm", "attention", "linear").</summary>
    public int Of(string op) => op switch
    {
        "conv2d" => Conv2d,
        "group_norm" => GroupNorm,
        "attention" => Attention,
        "linear" => Linear,
        _ => throw new ArgumentException($"'{op}' has no kernel versions", nameof(op)),
    };

    /// <summary>These versions with <paramref name="op"/> set to <paramref name="version"/>.</summary>
    public KernelVersions With(string op, int version)
    {
        Check(op, version);
        return op switch
        {
            "conv2d" => this with { Conv2d = version },
            "group_norm" => this with { GroupNorm = version },
            "attention" => this with { Attention = version },
            _ => this with { Linear = version },
        };
    }

    /// <summary>Every op that has a half-precision version switched to its newest one; the rest unchanged.</summary>
    public KernelVersions WithHalfPrecision()
    {
        var result = this;
        bool any = false;
        foreach (string op in KernelCatalog.VersionedOps)
        {
            int half = KernelCatalog.Entries.Where(e => e.Op == op && e.Half).Select(e => e.Version).DefaultIfEmpty(0).Max();
            if (half == 0) continue;
            result = result.With(op, half);
            any = true;
        }
        return any ? result : throw new DiffusionException("half precision was asked for, but no kernel has a half-precision version yet");
    }

    /// <summary>True when any selected version rounds its inputs to half precision.</summary>
    public bool UsesHalfPrecision => KernelCatalog.VersionedOps.Any(op => KernelCatalog.IsHalf(op, Of(op)));

    /// <summary>Throws a <see cref="DiffusionException"/> naming the op when a version does not exist.</summary>
    internal void Validate()
    {
        foreach (string op in KernelCatalog.VersionedOps) Check(op, Of(op));
    }

    public override string ToString() => string.Join(", ", KernelCatalog.VersionedOps.Select(op => $"{op} v{Of(op)}"));

    private static void Check(string op, int version)
    {
        int latest = KernelCatalog.Latest(op);
        if (version < 1 || version > latest) throw new DiffusionException($"kernels/{FileOf(op)} has versions 1 to {latest}, not {version}");
    }

    private static string FileOf(string op) => op switch
    {
        "conv2d" => "Conv2d.cs",
        "group_norm" => "GroupNorm.cs",
        "attention" => "Attention.cs",
        _ => "Linear.cs",
    };

    private static int Read(Func<string, string?> environment, string op)
    {
        string variable = "DIFFUSION_KERNEL_VERSION_" + op;
        string? text = environment(variable);
        if (string.IsNullOrWhiteSpace(text)) return KernelCatalog.DefaultVersion(op);
        int latest = KernelCatalog.Latest(op);
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= 1 && v <= latest) return v;
        throw new DiffusionException($"{variable}={text} is not a version of kernels/{FileOf(op)} (1 to {latest})");
    }
}
