using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Diffusion.Kernels.Bench;

/// <summary>
/// The FMA peak of this machine: a register-only loop of independent FusedMultiplyAdd chains on every thread, no
/// memory traffic at all. It is the yardstick the conv GFLOP/s are read against ("% of peak"); a 512-bit FMA counts
/// 32 FLOP whether the core executes it in one pass (Zen 5) or as two 256-bit halves (Zen 4).
/// </summary>
public sealed record FmaPeakWorkload(int Threads) : IWorkload
{
    /// <summary>Loop trips per thread and call: about 0.7 ms on a Zen 4 core, long enough for Stopwatch and BenchmarkDotNet.</summary>
    public const int Iterations = 200_000;

    /// <summary>Independent accumulators: more than an FMA's latency (4 cycles) times the pipes (2) needs.</summary>
    public const int Chains = 12;

    public double Flops => (double)Threads * Iterations * Chains * Vector512<float>.Count * 2;

    public double Bytes => 0;

    public override string ToString() => $"FMA peak, {Chains} Vector512 chains, {Threads} thread(s)";
}

public sealed class FmaPeakFixture(FmaPeakWorkload workload) : IFixture
{
    private readonly ParallelOptions _parallel = new() { MaxDegreeOfParallelism = workload.Threads };

    /// <summary>The chains' sums, kept so the JIT cannot drop the loop as dead.</summary>
    public float Sink { get; private set; }

    public void Run()
    {
        var sums = new float[workload.Threads];
        Parallel.For(0, workload.Threads, _parallel, t => sums[t] = Chains(t + 1));
        Sink = sums.Sum();
    }

    public void Dispose() { }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float Chains(float seed)
    {
        var m = Vector512.Create(0.999999f);
        var add = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(seed), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        Vector512<float> c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int i = 0; i < FmaPeakWorkload.Iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, add); c1 = Vector512.FusedMultiplyAdd(c1, m, add);
            c2 = Vector512.FusedMultiplyAdd(c2, m, add); c3 = Vector512.FusedMultiplyAdd(c3, m, add);
            c4 = Vector512.FusedMultiplyAdd(c4, m, add); c5 = Vector512.FusedMultiplyAdd(c5, m, add);
            c6 = Vector512.FusedMultiplyAdd(c6, m, add); c7 = Vector512.FusedMultiplyAdd(c7, m, add);
            c8 = Vector512.FusedMultiplyAdd(c8, m, add); c9 = Vector512.FusedMultiplyAdd(c9, m, add);
            c10 = Vector512.FusedMultiplyAdd(c10, m, add); c11 = Vector512.FusedMultiplyAdd(c11, m, add);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
