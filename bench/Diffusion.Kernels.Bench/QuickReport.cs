using System.Diagnostics;
using Diffusion.Kernels.Backends.Cpu;

namespace Diffusion.Kernels.Bench;

/// <summary>
/// `dotnet run -c Release --project bench/Diffusion.Kernels.Bench -- quick [filter [threads]]`: a few seconds of
/// Stopwatch timing per workload (best of several runs), for iterating on a kernel; BenchmarkDotNet is the record.
/// </summary>
internal static class QuickReport
{
    public static void Run(string filter, int threads)
    {
        using var backend = new CpuBackend(threads);
        Console.WriteLine(backend.DeviceDescription);
        foreach (var w in DdpmCifar.Convs().Where(w => Matches(w, filter)))
        {
            using var f = new ConvFixture(backend, w);
            Report(w, f.Run);
        }
        foreach (var w in DdpmCifar.Attentions().Where(w => Matches(w, filter)))
        {
            using var f = new AttentionFixture(backend, w);
            Report(w, f.Run);
        }
        foreach (var w in DdpmCifar.GroupNorms().Where(w => Matches(w, filter)))
        {
            using var f = new GroupNormFixture(backend, w);
            Report(w, f.Run);
        }
    }

    private static bool Matches(IWorkload w, string filter) => w.ToString()!.Contains(filter, StringComparison.OrdinalIgnoreCase);

    private static void Report(IWorkload w, Action run)
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
        string rate = w.Flops > 0 ? $"{w.Flops / best / 1e9,7:F1} GFLOP/s" : $"{w.Bytes / best / 1e9,7:F1} GB/s";
        Console.WriteLine($"{best * 1e3,9:F3} ms {rate}  {w}");
    }
}
