using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Bench;

/// <summary>
/// The FMA peak of this machine for one ISA tier: a register-only loop of independent FusedMultiplyAdd chains on
/// every thread, through the same ISimd struct the kernels use, no memory traffic at all. It is the yardstick the
/// conv GFLOP/s of that tier are read against ("% of peak"); a 512-bit FMA counts 32 FLOP whether the core executes it
/// in one pass (Zen 5) or as two 256-bit halves (Zen 4).
/// </summary>
public sealed record FmaPeakWorkload(int Threads, CpuTier Tier) : IWorkload
{
    /// <summary>Loop trips per thread and call: about 0.7 ms on a Zen 4 core at 512 bits, long enough for Stopwatch and BenchmarkDotNet.</summary>
    public const int Iterations = 200_000;

    /// <summary>Independent accumulators: more than an FMA's latency (4 cycles) times the pipes (2) needs; 14 registers with the constants, so it fits 16.</summary>
    public const int Chains = 12;

    public int Lanes => Tier switch { CpuTier.Avx512 => Simd512.Count, CpuTier.Avx2 => Simd256.Count, _ => Simd128.Count };

    public double Flops => (double)Threads * Iterations * Chains * Lanes * 2;

    public double Bytes => 0;

    public override string ToString() => $"FMA peak [{CpuTiers.Name(Tier)}], {Chains} chains of {Lanes} floats, {Threads} thread(s)";
}

public sealed class FmaPeakFixture(FmaPeakWorkload workload) : IFixture
{
    private readonly ParallelOptions _parallel = new() { MaxDegreeOfParallelism = workload.Threads };

    /// <summary>The chains' sums, kept so the JIT cannot drop the loop as dead.</summary>
    public float Sink { get; private set; }

    public void Run()
    {
        var sums = new float[workload.Threads];
        Func<float, float> chains = workload.Tier switch
        {
            CpuTier.Avx512 => Chains<Simd512, Vector512<float>>,
            CpuTier.Avx2 => Chains<Simd256, Vector256<float>>,
            _ => Chains<Simd128, Vector128<float>>,
        };
        Parallel.For(0, workload.Threads, _parallel, t => sums[t] = chains(t + 1));
        Sink = sums.Sum();
    }

    public void Dispose() { }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static float Chains<T, TV>(float seed) where T : struct, ISimd<TV> where TV : struct
    {
        var m = T.Broadcast(0.999999f);
        var add = T.Broadcast(1e-7f);
        TV c0 = T.Broadcast(seed), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
        TV c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (int i = 0; i < FmaPeakWorkload.Iterations; i++)
        {
            c0 = T.FusedMultiplyAdd(c0, m, add); c1 = T.FusedMultiplyAdd(c1, m, add);
            c2 = T.FusedMultiplyAdd(c2, m, add); c3 = T.FusedMultiplyAdd(c3, m, add);
            c4 = T.FusedMultiplyAdd(c4, m, add); c5 = T.FusedMultiplyAdd(c5, m, add);
            c6 = T.FusedMultiplyAdd(c6, m, add); c7 = T.FusedMultiplyAdd(c7, m, add);
            c8 = T.FusedMultiplyAdd(c8, m, add); c9 = T.FusedMultiplyAdd(c9, m, add);
            c10 = T.FusedMultiplyAdd(c10, m, add); c11 = T.FusedMultiplyAdd(c11, m, add);
        }
        var sum = T.Add(T.Add(T.Add(c0, c1), T.Add(c2, c3)), T.Add(T.Add(c4, c5), T.Add(c6, c7)));
        return T.Sum(T.Add(sum, T.Add(T.Add(c8, c9), T.Add(c10, c11))));
    }
}
