using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Diffusion.Kernels.Backends.Cpu;

namespace Diffusion.Kernels.Bench;

/// <summary>Default config plus a throughput column; pass `--job short` for a quick run.</summary>
internal static class BenchConfig
{
    public static IConfig Create() => DefaultConfig.Instance
        .AddColumn(new ThroughputColumn())
        .AddColumn(new TierColumn())
        .WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(80));
}

/// <summary>GFLOP/s for compute-bound workloads, GB/s for memory-bound ones, from the workload parameter.</summary>
internal sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);

    public string ColumnName => "Throughput";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "GFLOP/s (compute) or GB/s (memory) from the mean time";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        var workload = benchmarkCase.Parameters.Items.Select(p => p.Value).OfType<IWorkload>().FirstOrDefault();
        if (stats == null || workload == null) return "-";
        double seconds = stats.Mean * 1e-9;
        return workload.Flops > 0 ? $"{workload.Flops / seconds / 1e9:F1} GFLOP/s" : $"{workload.Bytes / seconds / 1e9:F1} GB/s";
    }
}

/// <summary>
/// The CPU tier every row ran on: the one DIFFUSION_CPU_TIER names, else the best (the benchmark processes inherit the
/// variable). The FMA peak rows name their own tier in the workload.
/// </summary>
internal sealed class TierColumn : IColumn
{
    public string Id => nameof(TierColumn);

    public string ColumnName => "Tier";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 1;

    public bool IsNumeric => false;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "CPU ISA tier of the backend (DIFFUSION_CPU_TIER or the best the host executes)";

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        benchmarkCase.Parameters.Items.Select(p => p.Value).OfType<FmaPeakWorkload>().FirstOrDefault() is { } peak
            ? CpuTiers.Name(peak.Tier)
            : CpuTiers.Name(CpuTiers.Resolve(null).Tier);
}
