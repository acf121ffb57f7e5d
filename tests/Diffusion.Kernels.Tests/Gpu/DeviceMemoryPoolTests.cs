using Diffusion.Kernels.Backends.Gpu;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>The caching allocator's bookkeeping, driven by a fake driver.</summary>
public sealed class DeviceMemoryPoolTests
{
    private sealed class FakeOutOfMemoryException() : Exception("CUDA_ERROR_OUT_OF_MEMORY");

    private static DeviceMemoryPool<ulong> NewPool(FakeDriver driver) =>
        new(driver.Allocate, driver.Free, e => e is FakeOutOfMemoryException);

    private sealed class FakeDriver
    {
        private ulong _next = 0x1000;
        public readonly HashSet<ulong> Live = [];
        public long Capacity = long.MaxValue;
        public long Used;
        public readonly Dictionary<ulong, long> Sizes = [];

        public ulong Allocate(long bytes)
        {
            if (Used + bytes > Capacity) throw new FakeOutOfMemoryException();
            ulong p = _next;
            _next += (ulong)bytes;
            Live.Add(p);
            Sizes[p] = bytes;
            Used += bytes;
            return p;
        }

        public void Free(ulong p)
        {
            Live.Remove(p).Should().BeTrue("only live blocks are freed");
            Used -= Sizes[p];
        }
    }

    [Fact]
    public void Steady_state_loop_reuses_blocks_without_new_driver_allocations()
    {
        var driver = new FakeDriver();
        using var pool = NewPool(driver);
        void Step()
        {
            ulong a = pool.Rent(4 * 128 * 32 * 32, out long sa);
            ulong b = pool.Rent(4 * 256 * 16 * 16, out long sb);
            ulong c = pool.Rent(1000, out long sc);
            pool.Return(c, sc);
            pool.Return(b, sb);
            pool.Return(a, sa);
        }

        Step();
        int afterFirst = pool.DriverAllocations;
        for (int i = 0; i < 10; i++) Step();

        pool.DriverAllocations.Should().Be(afterFirst).And.Be(3, "three distinct sizes are live at once, then always reused");
        pool.BlocksInUse.Should().Be(0);
        pool.BytesInUse.Should().Be(0);
    }

    [Fact]
    public void Sizes_round_up_to_shared_granules()
    {
        DeviceMemoryPool<ulong>.RoundSize(0).Should().Be(512);
        DeviceMemoryPool<ulong>.RoundSize(1000).Should().Be(1024);
        DeviceMemoryPool<ulong>.RoundSize(1 << 20).Should().Be(1 << 20);
        DeviceMemoryPool<ulong>.RoundSize((1 << 20) + 1).Should().Be(2 << 20);
    }

    [Fact]
    public void Out_of_memory_releases_the_cache_and_retries_once()
    {
        var driver = new FakeDriver { Capacity = 3 << 20 };
        using var pool = NewPool(driver);
        ulong a = pool.Rent(2 << 20, out long sa);
        pool.Return(a, sa); // 2 MB cached

        ulong b = pool.Rent(3 << 20, out long sb); // needs the cached 2 MB back

        driver.Live.Should().Equal(b);
        pool.BytesCached.Should().Be(0);
        pool.Return(b, sb);
        pool.Trim();
        FluentActions.Invoking(() => pool.Rent(4 << 20, out _)).Should().Throw<FakeOutOfMemoryException>();
    }

    [Fact]
    public void Dispose_frees_every_cached_block()
    {
        var driver = new FakeDriver();
        var pool = NewPool(driver);
        var blocks = Enumerable.Range(1, 5).Select(i => (P: pool.Rent(i * 1000, out long s), S: s)).ToList();
        foreach (var (p, s) in blocks) pool.Return(p, s);

        pool.Dispose();

        driver.Live.Should().BeEmpty();
        FluentActions.Invoking(() => pool.Rent(1, out _)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void Capture_serves_rents_from_the_cache_and_refuses_new_driver_memory()
    {
        long driverCalls = 0;
        ulong next = 0x1000;
        using var pool = new DeviceMemoryPool<ulong>(bytes => { driverCalls++; return next += (ulong)bytes; }, _ => { }, _ => false);
        ulong warm = pool.Rent(4096, out long size);
        pool.Return(warm, size);
        ulong unrelated = pool.Rent(8192, out long unrelatedSize);
        pool.Return(unrelated, unrelatedSize);
        long callsBefore = driverCalls;

        pool.BeginCapture();
        ulong inCapture = pool.Rent(4096, out _);
        pool.Return(inCapture, size);
        ulong again = pool.Rent(4096, out _); // reuse inside one capture is fine: the graph is one ordered chain
        pool.Return(again, size);
        FluentActions.Invoking(() => pool.Rent(1 << 22, out _)).Should().Throw<GraphCaptureException>().WithMessage("*warm*");
        var workspace = pool.EndCapture();

        driverCalls.Should().Be(callsBefore, "nothing may be allocated while capturing");
        inCapture.Should().Be(warm);
        workspace.Should().Equal((warm, size));
        pool.BlocksInUse.Should().Be(1, "the graph's workspace stays reserved");
        pool.Rent(4096, out _).Should().NotBe(warm, "the graph replays into its workspace, so nobody else may get it");
        pool.Rent(8192, out _).Should().Be(unrelated, "blocks the capture never touched stay shared");
    }
}
