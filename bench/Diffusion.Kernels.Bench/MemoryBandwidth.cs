using Diffusion.Kernels.Backends.Cpu;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Diffusion.Kernels.Bench;

/// <summary>STREAM's copy (a = b) and triad (a = b + s·c).</summary>
public enum StreamKernel
{
    Copy,
    Triad,
}

/// <summary>
/// A STREAM-style probe of the machine, the yardstick for the memory-bound ops (group norm, the elementwise ops, the
/// sampler step). Bytes count each array read or written once per pass, as STREAM does and as the ops' workloads
/// do, so their GB/s compare directly; neither counts the extra line reads of write-allocate caches.
/// </summary>
public sealed record BandwidthWorkload(string Name, StreamKernel Kernel, long ArrayBytes, int Passes) : IWorkload
{
    public int Arrays => Kernel == StreamKernel.Copy ? 2 : 3;

    public double Flops => 0;

    public double Bytes => (double)Arrays * ArrayBytes * Passes;

    public override string ToString() => Name;
}

/// <summary>The machine's yardsticks: the FMA peak, and bandwidth from arrays that stay in each core's L2 to arrays far larger than L3.</summary>
public static class Machine
{
    /// <summary>Every tier this CPU executes, on one thread, then on as many as the CPU backend uses by default (one per core).</summary>
    public static IEnumerable<FmaPeakWorkload> FmaPeaks() =>
        from tier in CpuTiers.All.Where(CpuTiers.IsSupported)
        from threads in new[] { 1, Environment.ProcessorCount }.Distinct()
        select new FmaPeakWorkload(threads, tier);

    private const long KiB = 1024, MiB = 1024 * KiB;

    /// <summary>Passes are chosen so that one call moves a few hundred MB: long enough to time, short enough to repeat.</summary>
    public static IEnumerable<BandwidthWorkload> Bandwidths() =>
        from size in new (string Name, long ArrayBytes, int Passes)[]
        {
            ("128 KiB arrays (L2-resident), 2000 passes", 128 * KiB, 2000),
            ("4 MiB arrays (L3-resident), 50 passes", 4 * MiB, 50),
            ("256 MiB arrays (DRAM), 1 pass", 256 * MiB, 1),
        }
        from kernel in new[] { StreamKernel.Copy, StreamKernel.Triad }
        let arrays = kernel == StreamKernel.Copy ? "2" : "3"
        select new BandwidthWorkload($"STREAM {kernel.ToString().ToLowerInvariant()}, {arrays} x {size.Name}", kernel, size.ArrayBytes, size.Passes);
}

/// <summary>
/// The arrays of one probe, 64-byte aligned and first written by the threads that use them. Run() is one
/// Parallel.For over the backend's thread count (one item per thread, so which pool runs them does not matter);
/// each thread makes all its passes over its own slice, so an L2-sized probe stays in its core's L2 instead of
/// moving between cores between passes.
/// The loops are plain Vector512 loads and stores (Vector256 without AVX-512), like the ops' own, so the probe shows
/// what such a loop can reach rather than the last few percent that unrolling or streaming stores would add.
/// </summary>
public sealed unsafe class BandwidthFixture : IFixture
{
    private const float Scale = 3f;

    private readonly BandwidthWorkload _workload;
    private readonly int _threads;
    private readonly long _length;
    private readonly nint[] _arrays;
    private readonly ParallelOptions _parallel;
    private readonly Action<int> _slice;

    public BandwidthFixture(int threads, BandwidthWorkload workload)
    {
        _workload = workload;
        _threads = threads;
        _length = workload.ArrayBytes / sizeof(float);
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = threads };
        _arrays = new nint[workload.Arrays];
        for (int i = 0; i < _arrays.Length; i++) _arrays[i] = (nint)NativeMemory.AlignedAlloc((nuint)workload.ArrayBytes, 64);
        Parallel.For(0, threads, _parallel, t =>
        {
            var (start, end) = Slice(t);
            for (int i = 0; i < _arrays.Length; i++) new Span<float>((float*)_arrays[i] + start, (int)(end - start)).Fill(i);
        });
        _slice = RunSlice;
    }

    public void Run() => Parallel.For(0, _threads, _parallel, _slice);

    public void Dispose()
    {
        for (int i = 0; i < _arrays.Length; i++)
        {
            NativeMemory.AlignedFree((void*)_arrays[i]);
            _arrays[i] = 0;
        }
    }

    /// <summary>Thread t's share of the arrays, cut on 64-byte boundaries.</summary>
    private (long Start, long End) Slice(int t) =>
        ((_length * t / _threads) & ~15L, t == _threads - 1 ? _length : (_length * (t + 1) / _threads) & ~15L);

    private void RunSlice(int t)
    {
        var (start, end) = Slice(t);
        float* a = (float*)_arrays[0], b = (float*)_arrays[1];
        for (int pass = 0; pass < _workload.Passes; pass++)
        {
            if (_workload.Kernel == StreamKernel.Copy) Copy(a, b, start, end);
            else Triad(a, b, (float*)_arrays[2], start, end);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Copy(float* a, float* b, long start, long end)
    {
        long i = start;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= end - 16; i += 16) Vector512.LoadAligned(b + i).StoreAligned(a + i);
        }
        else
        {
            for (; i <= end - 8; i += 8) Vector256.LoadAligned(b + i).StoreAligned(a + i);
        }
        for (; i < end; i++) a[i] = b[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Triad(float* a, float* b, float* c, long start, long end)
    {
        long i = start;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(Scale);
            for (; i <= end - 16; i += 16) Vector512.FusedMultiplyAdd(s, Vector512.LoadAligned(c + i), Vector512.LoadAligned(b + i)).StoreAligned(a + i);
        }
        else
        {
            var s = Vector256.Create(Scale);
            for (; i <= end - 8; i += 8) Vector256.FusedMultiplyAdd(s, Vector256.LoadAligned(c + i), Vector256.LoadAligned(b + i)).StoreAligned(a + i);
        }
        for (; i < end; i++) a[i] = b[i] + Scale * c[i];
    }
}
