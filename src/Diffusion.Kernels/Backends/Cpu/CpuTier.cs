using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The instruction-set tiers the CPU kernels are compiled for (Simd/Simd512.cs, Simd256.cs, Simd128.cs). A backend
/// runs one, chosen when it is created: the best the host executes, or a lower one forced through the backend's
/// constructor or the DIFFUSION_CPU_TIER environment variable (how CI runs every kernel test once per tier).
/// </summary>
public enum CpuTier
{
    /// <summary>128-bit vectors: Arm64 AdvSimd, x86 SSE (with FMA where present), or anything else.</summary>
    V128,

    /// <summary>256-bit AVX2 with FMA.</summary>
    Avx2,

    /// <summary>512-bit AVX-512 (F, with the AVX2 gathers every AVX-512 CPU has).</summary>
    Avx512,
}

/// <summary>Which tiers this host executes, their names, and the DIFFUSION_CPU_TIER switch.</summary>
public static class CpuTiers
{
    /// <summary>The environment variable that forces a tier: avx512, avx2 or v128 (auto or empty: the best).</summary>
    public const string EnvironmentVariable = "DIFFUSION_CPU_TIER";

    /// <summary>Tiers from the fastest down.</summary>
    public static IReadOnlyList<CpuTier> All { get; } = [CpuTier.Avx512, CpuTier.Avx2, CpuTier.V128];

    /// <summary>
    /// The fastest tier the host runs at full speed. AVX-512 counts only where the runtime also reports Vector512
    /// as accelerated: it declines on CPUs whose clocks drop under 512-bit work.
    /// </summary>
    public static CpuTier Best =>
        IsSupported(CpuTier.Avx512) && Vector512.IsHardwareAccelerated ? CpuTier.Avx512
        : IsSupported(CpuTier.Avx2) ? CpuTier.Avx2
        : CpuTier.V128;

    public static bool IsSupported(CpuTier tier) => tier switch
    {
        CpuTier.Avx512 => Avx512F.IsSupported && Avx2.IsSupported && Fma.IsSupported,
        CpuTier.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        CpuTier.V128 => true,
        _ => false,
    };

    /// <summary>avx512, avx2, v128: the spelling of the switch, the tests and the benchmark rows.</summary>
    public static string Name(CpuTier tier) => tier switch
    {
        CpuTier.Avx512 => "avx512",
        CpuTier.Avx2 => "avx2",
        _ => "v128",
    };

    /// <summary>What a tier runs on, for the device line: "AVX-512", "AVX2+FMA", "128-bit NEON".</summary>
    public static string Describe(CpuTier tier) => tier switch
    {
        CpuTier.Avx512 => "AVX-512",
        CpuTier.Avx2 => "AVX2+FMA",
        _ => AdvSimd.IsSupported ? "128-bit NEON" : Sse.IsSupported ? Fma.IsSupported ? "128-bit SSE+FMA" : "128-bit SSE" : "128-bit",
    };

    /// <summary>Parses a tier name (avx512, avx2, v128); anything else is a one-line <see cref="CpuTierException"/> listing them.</summary>
    public static CpuTier Parse(string name, string source) => name.Trim().ToLowerInvariant() switch
    {
        "avx512" => CpuTier.Avx512,
        "avx2" => CpuTier.Avx2,
        "v128" => CpuTier.V128,
        _ => throw new CpuTierException($"{source}: unknown CPU tier '{name}' (expected avx512, avx2 or v128)"),
    };

    /// <summary>
    /// The tier a new backend runs: <paramref name="requested"/>, else DIFFUSION_CPU_TIER, else <see cref="Best"/>.
    /// A requested tier the host cannot execute is an error rather than a silent fallback, so a CI row never claims
    /// to have tested a tier it did not run.
    /// </summary>
    internal static (CpuTier Tier, string? ForcedBy) Resolve(CpuTier? requested)
    {
        string? forcedBy = null;
        if (requested is null)
        {
            string? value = Environment.GetEnvironmentVariable(EnvironmentVariable);
            if (!string.IsNullOrWhiteSpace(value) && !value.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase))
            {
                requested = Parse(value, EnvironmentVariable);
                forcedBy = EnvironmentVariable;
            }
        }
        else
        {
            forcedBy = "the tier option";
        }
        if (requested is not { } tier) return (Best, null);
        if (!IsSupported(tier))
            throw new CpuTierException($"{(forcedBy == EnvironmentVariable ? EnvironmentVariable : "CpuBackend")}: this CPU cannot execute the {Name(tier)} tier (it runs {string.Join(", ", All.Where(IsSupported).Select(Name))})");
        return (tier, tier == Best ? null : forcedBy);
    }
}

/// <summary>
/// A CPU tier was asked for (DIFFUSION_CPU_TIER or the backend option) that is unknown or that this CPU cannot execute:
/// a usage error, raised when the backend is created, before any work.
/// </summary>
public sealed class CpuTierException(string message) : DiffusionException(message);
