namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The reference backend: every op in plain C# SIMD, spread over all cores. Each kernel is written once, generic over
/// an ISA tier (<see cref="CpuTier"/>; Simd/ISimd.cs), and every op dispatches to the tier chosen when the backend
/// was created, so one process can hold backends of several tiers (the tests do). The ops live one per
/// file (Conv2d.cs, GroupNorm.cs, Attention.cs, Linear.cs, Elementwise.cs, SamplerStep.cs), named like their
/// GPU twins in kernels/*.cs; Conv2dWinograd.cs is Conv2d's fast path for 3×3 convs. Ops run synchronously on
/// the calling thread, which joins the backend's own worker threads (WorkerPool.cs; Dispose ends them), so one
/// backend instance must be driven from one thread at a time. Every loop a forward runs is marked
/// AggressiveOptimization: tier-0 code for the first forwards would otherwise be what a short benchmark measures.
/// </summary>
public sealed partial class CpuBackend : IBackend
{
    private readonly TensorPool _pool = new();
    private readonly WorkerPool _workers;
    private bool _disposed;

    private readonly string? _tierForcedBy;

    /// <param name="threads">Worker threads; 0 means one per logical core.</param>
    /// <param name="tier">The ISA tier; null means DIFFUSION_CPU_TIER if set, else the best the host executes.</param>
    /// <exception cref="CpuTierException">The tier (or the variable's value) is unknown or not executable here.</exception>
    public CpuBackend(int threads = 0, CpuTier? tier = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        Threads = threads == 0 ? Environment.ProcessorCount : threads;
        _workers = new WorkerPool(Threads);
        (Tier, _tierForcedBy) = CpuTiers.Resolve(tier);
    }

    public string Name => "cpu";

    public int Threads { get; }

    /// <summary>The ISA tier every op of this backend runs.</summary>
    public CpuTier Tier { get; }

    /// <summary>"AMD EPYC, 2 threads, AVX2+FMA (forced by DIFFUSION_CPU_TIER)".</summary>
    public string DeviceDescription =>
        $"{CpuModelName()}, {Threads} thread{(Threads == 1 ? "" : "s")}, {CpuTiers.Describe(Tier)}" +
        (_tierForcedBy == null ? "" : $" (forced by {_tierForcedBy})");

    /// <summary>The contents of a new tensor are unspecified (pooled memory is not cleared).</summary>
    public DeviceTensor Allocate(params int[] shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(shape);
        long count = HostTensor.Count(shape);
        if (count > Array.MaxLength)
            throw new BackendArgumentException($"shape ({string.Join(", ", shape)}) holds {count} values, more than one CPU tensor can");
        return new CpuTensor(this, _pool, shape);
    }

    public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape)
    {
        var tensor = Allocate(shape);
        if (data.Length != tensor.Length)
        {
            tensor.Dispose();
            throw new BackendArgumentException($"{data.Length} values do not fill shape ({string.Join(", ", shape)})");
        }
        data.CopyTo(((CpuTensor)tensor).Span);
        return tensor;
    }

    public void Download(DeviceTensor source, Span<float> destination)
    {
        var src = Mine(source, nameof(source));
        if (destination.Length != src.Length)
            throw new BackendArgumentException($"destination holds {destination.Length} values, {source} holds {src.Length}");
        src.Span.CopyTo(destination);
    }

    /// <summary>Nothing to wait for: every CPU op has finished when it returns.</summary>
    public void Synchronize() { }

    public void Dispose()
    {
        _disposed = true;
        _workers.Dispose();
        _pool.Clear();
    }

    private CpuTensor Mine(DeviceTensor? tensor, string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not CpuTensor cpu || !ReferenceEquals(tensor.Owner, this))
            throw new BackendArgumentException($"{name} ({tensor}) was not allocated by this CPU backend");
        return cpu;
    }

    private static void Require(bool condition, string op, string problem)
    {
        if (!condition) throw new BackendArgumentException($"{op}: {problem}");
    }

    private static string Describe(DeviceTensor t) => $"({string.Join(", ", t.ShapeArray())})";

    /// <summary>Runs body(0..count-1) over the worker threads; one item runs inline without the pool's overhead.</summary>
    private void For(int count, Action<int> body)
    {
        if (count == 1 || Threads == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        _workers.For(count, body);
    }

    /// <summary>
    /// Runs body(start, end) over [0, items) cut into contiguous ranges, <paramref name="perThread"/> per thread: a
    /// few for loops whose items (an image plane, a group-norm block) are each too small to be scheduled as a task
    /// of their own, one where each range streams its own share of the weights (the few-pixel conv: one per thread).
    /// </summary>
    private void ForRanges(int items, Action<int, int> body, int perThread = 4)
    {
        int tasks = Math.Min(items, perThread * Threads);
        For(tasks, t => body((int)((long)t * items / tasks), (int)((long)(t + 1) * items / tasks)));
    }

    /// <summary>Splits [0, length) into per-thread chunks for memory-bound elementwise loops.</summary>
    private void ForChunks(long length, Action<long, long> body)
    {
        const long MinChunk = 1 << 15;
        int chunks = (int)Math.Clamp(length / MinChunk, 1, Threads * 4);
        long chunk = (length + chunks - 1) / chunks;
        chunk = (chunk + 15) & ~15L;
        For(chunks, c =>
        {
            long start = c * chunk;
            long end = Math.Min(length, start + chunk);
            if (start < end) body(start, end);
        });
    }

    private static string CpuModelName()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("model name", StringComparison.Ordinal))
                    return line[(line.IndexOf(':') + 1)..].Trim();
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return "CPU";
    }
}
