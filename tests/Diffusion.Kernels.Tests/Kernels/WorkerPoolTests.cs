using Diffusion.Kernels.Backends.Cpu;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Kernels;

/// <summary>The CPU backend's own threads: every item of every loop once, really in parallel, errors to the caller.</summary>
public class WorkerPoolTests
{
    /// <summary>Enough back-to-back loops for a worker still leaving one to meet the next being posted.</summary>
    private const int Loops = 2000;

    [Fact]
    public void Every_item_of_every_loop_runs_once_even_when_loops_follow_each_other_at_once()
    {
        using var pool = new WorkerPool(threads: 3);
        var runs = new int[Loops, 9];
        for (int loop = 0; loop < Loops; loop++)
        {
            int current = loop;
            pool.For(1 + loop % 9, i => Interlocked.Increment(ref runs[current, i]));
        }
        for (int loop = 0; loop < Loops; loop++)
        {
            for (int i = 0; i < 9; i++)
                runs[loop, i].Should().Be(i < 1 + loop % 9 ? 1 : 0, $"item {i} of loop {loop}");
        }
    }

    /// <summary>Two items that each wait for the other finish only if they run at the same time.</summary>
    [Fact]
    public void Items_run_on_the_caller_and_a_worker_at_the_same_time()
    {
        using var pool = new WorkerPool(threads: 2);
        for (int attempt = 0; attempt < 3; attempt++)
        {
            using var both = new Barrier(2);
            var met = new bool[2];
            pool.For(2, i => met[i] = both.SignalAndWait(TimeSpan.FromSeconds(10)));
            met.Should().AllBeEquivalentTo(true, "the second item must have started while the first waited");
        }
    }

    /// <summary>A worker asleep after its spin must be woken by the next loop, not left for the caller to cover.</summary>
    [Fact]
    public void A_loop_posted_after_the_workers_went_to_sleep_still_runs_in_parallel()
    {
        using var pool = new WorkerPool(threads: 2);
        pool.For(2, _ => { });
        Thread.Sleep(50);
        using var both = new Barrier(2);
        var met = new bool[2];
        pool.For(2, i => met[i] = both.SignalAndWait(TimeSpan.FromSeconds(10)));
        met.Should().AllBeEquivalentTo(true);
    }

    [Fact]
    public void An_exception_in_an_item_reaches_the_caller_after_the_other_items_and_the_pool_still_works()
    {
        using var pool = new WorkerPool(threads: 2);
        int finished = 0;
        var act = () => pool.For(8, i =>
        {
            if (i == 3) throw new InvalidOperationException("item 3");
            Interlocked.Increment(ref finished);
        });
        act.Should().Throw<InvalidOperationException>().WithMessage("item 3");
        finished.Should().Be(7);

        int after = 0;
        pool.For(4, _ => Interlocked.Increment(ref after));
        after.Should().Be(4);
    }
}
