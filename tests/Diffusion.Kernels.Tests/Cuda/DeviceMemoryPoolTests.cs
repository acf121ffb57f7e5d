using Diffusion.Kernels.Backends.Cuda;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>The caching allocator's bookkeeping, driven by a fake driver.</summary>
public sealed class DeviceMemoryPoolTests
{
    private sealed class FakeDriver
    {
        private ulong _next = 0x1000;
        public readonly HashSet<ulong> Live = [];
        public long Capacity = long.MaxValue;
        public long Used;
        public readonly Dictionary<ulong, long> Sizes = [];

        public ulong Allocate(long bytes)
        {
            if (Used + bytes > Capacity) throw CudaErrors.Create(2, "cuMemAlloc_v2", "allocating " + bytes, askDriver: false);
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
        using var pool = new DeviceMemoryPool(driver.Allocate, driver.Free);
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
        DeviceMemoryPool.RoundSize(0).Should().Be(512);
        DeviceMemoryPool.RoundSize(1000).Should().Be(1024);
        DeviceMemoryPool.RoundSize(1 << 20).Should().Be(1 << 20);
        DeviceMemoryPool.RoundSize((1 << 20) + 1).Should().Be(2 << 20);
    }

    [Fact]
    public void Out_of_memory_releases_the_cache_and_retries_once()
    {
        var driver = new FakeDriver { Capacity = 3 << 20 };
        using var pool = new DeviceMemoryPool(driver.Allocate, driver.Free);
        ulong a = pool.Rent(2 << 20, out long sa);
        pool.Return(a, sa); // 2 MB cached

        ulong b = pool.Rent(3 << 20, out long sb); // needs the cached 2 MB back

        driver.Live.Should().Equal(b);
        pool.BytesCached.Should().Be(0);
        pool.Return(b, sb);
        pool.Trim();
        FluentActions.Invoking(() => pool.Rent(4 << 20, out _)).Should().Throw<CudaException>()
            .Which.ErrorName.Should().Be("CUDA_ERROR_OUT_OF_MEMORY");
    }

    [Fact]
    public void Dispose_frees_every_cached_block()
    {
        var driver = new FakeDriver();
        var pool = new DeviceMemoryPool(driver.Allocate, driver.Free);
        var blocks = Enumerable.Range(1, 5).Select(i => (P: pool.Rent(i * 1000, out long s), S: s)).ToList();
        foreach (var (p, s) in blocks) pool.Return(p, s);

        pool.Dispose();

        driver.Live.Should().BeEmpty();
        FluentActions.Invoking(() => pool.Rent(1, out _)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void Buffers_return_their_block_once()
    {
        var driver = new FakeDriver();
        using var pool = new DeviceMemoryPool(driver.Allocate, driver.Free);
        var buffer = new DeviceBuffer(pool, 100);

        buffer.Dispose();
        buffer.Dispose();

        pool.BlocksInUse.Should().Be(0);
        pool.BytesCached.Should().Be(512);
        FluentActions.Invoking(() => buffer.Pointer).Should().Throw<ObjectDisposedException>();
    }
}
