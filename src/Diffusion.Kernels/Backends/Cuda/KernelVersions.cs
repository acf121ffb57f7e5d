namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// Which version of each kernel the backend launches (kernel-lab style: version 1 is the readable one; see the list
/// at the top of each kernels/*.cu file). DIFFUSION_KERNEL_VERSION_&lt;op&gt;=N selects another, e.g.
/// DIFFUSION_KERNEL_VERSION_conv2d=1. The default is the fastest version that keeps float32 accuracy; version 3 of conv2d
/// and of attention (half-precision tensor cores) is opt-in only, through the variables or
/// <see cref="CudaBackendOptions.HalfPrecision"/>.
/// </summary>
public sealed record KernelVersions(int Conv2d, int GroupNorm, int Attention, int Linear)
{
    /// <summary>Every op with a choice of kernels: its default version and its newest.</summary>
    public static IReadOnlyList<(string Op, int Default, int Latest)> Ops { get; } =
    [
        ("conv2d", 2, 3),
        ("group_norm", 2, 2),
        ("attention", 2, 3),
        ("linear", 2, 2),
    ];

    /// <summary>The defaults: the fastest float32 kernel of each op.</summary>
    public static KernelVersions Default { get; } = new(2, 2, 2, 2);

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
        var (_, _, latest) = Find(op);
        if (version < 1 || version > latest) throw new DiffusionException($"kernels/{op}.cu has versions 1 to {latest}, not {version}");
        return op switch
        {
            "conv2d" => this with { Conv2d = version },
            "group_norm" => this with { GroupNorm = version },
            "attention" => this with { Attention = version },
            _ => this with { Linear = version },
        };
    }

    /// <summary>Throws a <see cref="DiffusionException"/> naming the op when a version does not exist.</summary>
    internal void Validate()
    {
        foreach (var (op, _, latest) in Ops)
        {
            int v = Of(op);
            if (v < 1 || v > latest) throw new DiffusionException($"kernels/{op}.cu has versions 1 to {latest}, not {v}");
        }
    }

    private static (string Op, int Default, int Latest) Find(string op) =>
        Ops.FirstOrDefault(o => o.Op == op) is { Op: not null } found ? found : throw new ArgumentException($"'{op}' has no kernel versions", nameof(op));

    private static int Read(Func<string, string?> environment, string op)
    {
        var (_, defaultVersion, latest) = Find(op);
        string variable = "DIFFUSION_KERNEL_VERSION_" + op;
        string? text = environment(variable);
        if (string.IsNullOrWhiteSpace(text)) return defaultVersion;
        if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v) && v >= 1 && v <= latest)
            return v;
        throw new DiffusionException($"{variable}={text} is not a version of kernels/{op}.cu (1 to {latest})");
    }
}
