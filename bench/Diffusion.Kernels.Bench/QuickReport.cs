using System.Diagnostics;
using Diffusion.Kernels.Backends.Cpu;

namespace Diffusion.Kernels.Bench;

/// <summary>
/// `dotnet run -c Release --project bench/Diffusion.Kernels.Bench -- quick [filter [threads]]`: a few seconds of
/// Stopwatch timing per workload (best of several runs), for iterating on a kernel; BenchmarkDotNet is the record.
/// The filter matches workload names; "forward" breaks a whole forward down by op, "peak" runs only the FMA peak probe
/// "convpeak" every 3×3 conv of ≥ 128 channels against the tier's FMA peak, and "bandwidth" only the STREAM probes, which allocate up to 768 MiB and so stay out of the unfiltered run. The
/// backend runs the tier DIFFUSION_CPU_TIER names (else the best); every row names it. "peak" measures every tier.
/// </summary>
internal static class QuickReport
{
    /// <summary>The tier the rows below ran on, printed in each; the FMA peak rows name their own.</summary>
    private static string s_tier = "";

    public static void Run(string filter, int threads)
    {
        using var backend = new CpuBackend(threads);
        Console.WriteLine(backend.DeviceDescription);
        if (filter == "forward")
        {
            foreach (var w in DdpmCifar.Forwards()) ForwardBreakdown(w, threads);
            return;
        }
        if (filter == "peak")
        {
            ReportAll(Machine.FmaPeaks().Where(w => w.Threads <= backend.Threads), "", w => new FmaPeakFixture(w));
            return;
        }
        if (filter == "convpeak")
        {
            ConvAgainstPeak(backend);
            return;
        }
        if (filter == "bandwidth")
        {
            ReportAll(Machine.Bandwidths(), "", w => new BandwidthFixture(backend.Threads, w));
            return;
        }
        s_tier = CpuTiers.Name(backend.Tier);
        ReportAll(DdpmCifar.Convs(), filter, w => new ConvFixture(backend, w));
        ReportAll(DdpmCifar.Attentions(), filter, w => new AttentionFixture(backend, w));
        ReportAll(DdpmCifar.GroupNorms(), filter, w => new GroupNormFixture(backend, w));
        ReportAll(DdpmCifar.Linears(), filter, w => new LinearFixture(backend, w));
        ReportAll(DdpmCifar.SiLUs(), filter, w => new SiLUFixture(backend, w));
        ReportAll(DdpmCifar.Adds(), filter, w => new AddFixture(backend, w));
        ReportAll(DdpmCifar.Concats(), filter, w => new ConcatFixture(backend, w));
        ReportAll(DdpmCifar.Upsamples(), filter, w => new UpsampleFixture(backend, w));
        ReportAll(DdpmCifar.TimestepEmbeddings(), filter, w => new TimestepEmbeddingFixture(backend, w));
        ReportAll(DdpmCifar.SamplerSteps(), filter, w => new SamplerStepFixture(backend, w));
    }

    /// <summary>
    /// Times whole forwards (median of 20, after warm-up), then one more profiled set of 20 that splits the time
    /// by op and shape, so the table shows where a forward's milliseconds go and at what throughput.
    /// </summary>
    private static void ForwardBreakdown(ForwardWorkload w, int threads)
    {
        const int Runs = 20;
        var cpu = new CpuBackend(threads);
        using var profiler = new ProfilingBackend(cpu) { Enabled = false };
        using var fixture = new ForwardFixture(profiler, w.Batch);
        for (int i = 0; i < 3; i++) fixture.Run();
        var times = new double[Runs];
        for (int i = 0; i < Runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            fixture.Run();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        double median = times[Runs / 2];
        Console.WriteLine();
        Console.WriteLine($"[{CpuTiers.Name(cpu.Tier)}] {w}: median {median:F2} ms, best {times[0]:F2} ms, {w.Flops / 1e9:F2} GFLOP, {w.Flops / median / 1e6:F0} GFLOP/s at the median");

        profiler.Enabled = true;
        long profiledStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < Runs; i++) fixture.Run();
        double wall = Stopwatch.GetElapsedTime(profiledStart).TotalMilliseconds / Runs;
        double total = profiler.Stats.Values.Sum(s => s.Seconds) / Runs * 1e3;
        Console.WriteLine($"  profiled forwards: {wall:F2} ms each (mean), of which the ops take {total:F2} ms; GFLOP/s are direct-conv equivalent");
        Console.WriteLine($"  {"op and shape",-42} {"calls",5} {"ms",8} {"share",6} {"GFLOP/s",8}");
        foreach (var (key, s) in profiler.Stats.OrderByDescending(p => p.Value.Seconds))
        {
            double ms = s.Seconds / Runs * 1e3;
            string rate = s.Flops > 0 ? $"{s.Flops / s.Seconds / 1e9,8:F0}" : $"{"",8}";
            Console.WriteLine($"  {key,-42} {s.Calls / Runs,5} {ms,8:F3} {ms / total,6:P0} {rate}");
        }
    }

    /// <summary>
    /// Every 3×3 conv with at least 128 channels on both sides against the FMA peak of the backend's tier, each pair
    /// timed back to back five times so a busy machine slows both alike; prints the median of the per-pair ratios.
    /// </summary>
    private static void ConvAgainstPeak(CpuBackend backend)
    {
        var peakWorkload = new FmaPeakWorkload(backend.Threads, backend.Tier);
        using var peak = new FmaPeakFixture(peakWorkload);
        Console.WriteLine($"{"conv GFLOP/s",12} {"peak GFLOP/s",12} {"% of peak",9}  [tier] workload (medians of 5 back-to-back pairs)");
        foreach (var w in DdpmCifar.Convs().Where(w => w.Spec.Kernel == 3 && w.Spec.InChannels >= 128 && w.Spec.OutChannels >= 128))
        {
            using var conv = new ConvFixture(backend, w);
            var convRates = new List<double>();
            var peakRates = new List<double>();
            var ratios = new List<double>();
            for (int pair = 0; pair < 5; pair++)
            {
                double p = peakWorkload.Flops / Best(peak.Run), c = w.Flops / Best(conv.Run);
                peakRates.Add(p / 1e9);
                convRates.Add(c / 1e9);
                ratios.Add(c / p);
            }
            Console.WriteLine($"{Median(convRates),12:F1} {Median(peakRates),12:F1} {Median(ratios),9:P0}  [{CpuTiers.Name(backend.Tier)}] {w}");
        }

        static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
    }

    private static void ReportAll<T>(IEnumerable<T> workloads, string filter, Func<T, IFixture> createFixture) where T : IWorkload
    {
        foreach (var w in workloads.Where(w => Matches(w, filter)))
        {
            using var fixture = createFixture(w);
            Report(w, fixture.Run);
        }
    }

    private static bool Matches(IWorkload w, string filter) => w.ToString()!.Contains(filter, StringComparison.OrdinalIgnoreCase);

    private static void Report(IWorkload w, Action run)
    {
        double best = Best(run);
        string rate = w.Flops > 0 ? $"{w.Flops / best / 1e9,7:F1} GFLOP/s" : $"{w.Bytes / best / 1e9,7:F1} GB/s";
        string tier = w is FmaPeakWorkload ? "" : $"[{s_tier}] ";
        Console.WriteLine($"{best * 1e3,9:F3} ms {rate}  {tier}{w}");
    }

    /// <summary>Seconds per call: the best of five trials of about 50 ms each, after a warm-up call.</summary>
    private static double Best(Action run)
    {
        run();
        int reps = 1;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalMilliseconds < 50) { run(); reps++; }
        double best = double.MaxValue;
        for (int trial = 0; trial < 5; trial++)
        {
            clock.Restart();
            for (int i = 0; i < reps; i++) run();
            best = Math.Min(best, clock.Elapsed.TotalSeconds / reps);
        }
        return best;
    }
}
