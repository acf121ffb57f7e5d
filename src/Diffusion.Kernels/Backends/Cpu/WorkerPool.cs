using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The CPU backend's own threads: the caller plus <c>threads − 1</c> workers, which claim a loop's items from a shared
/// counter. A forward is a few hundred loops, many of 20–200 µs at batch 1, and the .NET thread pool's workers park
/// between them: waking one can take longer than such a loop, so the caller often runs every item itself. These
/// workers spin (yielding) for 2 ms after each loop, so the next one finds them awake, and sleep only when the
/// backend is idle. Forwards alternating with <c>Parallel.For</c> in one process took 0.85–0.96 of its time at batch 1
/// and 0.89–0.94 at batch 8 (bench/RESULTS.md). Each loop is its own <see cref="Job"/> object, so a worker still
/// leaving the last one can never claim an item of the next.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    /// <summary>How long an idle worker spins before it sleeps: longer than the gaps inside a forward.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 500;

    private readonly int _threads;
    private readonly object _gate = new();
    private Thread[]? _workers;
    private Job? _current;
    private int _sleepers;
    private volatile bool _disposed;

    public WorkerPool(int threads) => _threads = threads;

    /// <summary>Runs body(0..count-1) on the caller and the workers; returns when every item has finished.</summary>
    public void For(int count, Action<int> body)
    {
        _workers ??= StartWorkers();
        var job = new Job(body, count);
        Interlocked.Exchange(ref _current, job);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_gate) Monitor.PulseAll(_gate);
        }
        job.Run();
        var spin = new SpinWait();
        while (Volatile.Read(ref job.Pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
        job.Error?.Throw();
    }

    public void Dispose()
    {
        _disposed = true;
        lock (_gate) Monitor.PulseAll(_gate);
    }

    private Thread[] StartWorkers()
    {
        var workers = new Thread[_threads - 1];
        for (int i = 0; i < workers.Length; i++)
        {
            workers[i] = new Thread(Work) { IsBackground = true, Name = $"Diffusion.Kernels CPU worker {i + 1}" };
            workers[i].Start();
        }
        return workers;
    }

    private void Work()
    {
        Job? last = null;
        while (!_disposed)
        {
            var job = Volatile.Read(ref _current);
            if (job != last)
            {
                last = job;
                job!.Run();
                continue;
            }
            if (!SpinForNext(last)) Sleep(last);
        }
    }

    /// <summary>Spins until a job other than <paramref name="last"/> is posted (true) or the spin time runs out.</summary>
    private bool SpinForNext(Job? last)
    {
        long until = Stopwatch.GetTimestamp() + SpinTicks;
        var spin = new SpinWait();
        while (Volatile.Read(ref _current) == last && !_disposed)
        {
            if (Stopwatch.GetTimestamp() > until) return false;
            spin.SpinOnce(sleep1Threshold: -1);
        }
        return true;
    }

    private void Sleep(Job? last)
    {
        lock (_gate)
        {
            // Counted before the check, under the lock, so a poster either sees the sleeper or the sleeper sees its job.
            Interlocked.Increment(ref _sleepers);
            while (Volatile.Read(ref _current) == last && !_disposed) Monitor.Wait(_gate);
            Interlocked.Decrement(ref _sleepers);
        }
    }

    private sealed class Job(Action<int> body, int count)
    {
        private readonly int _count = count;
        private int _next = -1;
        public int Pending = count;
        public ExceptionDispatchInfo? Error;

        public void Run()
        {
            for (int i = Interlocked.Increment(ref _next); i < _count; i = Interlocked.Increment(ref _next))
            {
                try
                {
                    body(i);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref Error, ExceptionDispatchInfo.Capture(e), null);
                }
                finally
                {
                    Interlocked.Decrement(ref Pending);
                }
            }
        }
    }
}
