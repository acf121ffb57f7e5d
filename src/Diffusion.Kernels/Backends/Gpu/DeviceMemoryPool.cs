namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// A caching allocator for device memory. The U-Net allocates and frees the same few activation sizes on every
/// step; cuMemAlloc/cuMemFree synchronise the device and cost tens of microseconds, so freed blocks are kept in
/// per-size free lists and handed out again. Reuse is safe without events because every op runs in order on the
/// backend's single stream: a block returned by one op is only written by ops issued after it.
/// When the driver runs out of memory the cached blocks are released and the allocation retried once.
/// While a CUDA graph is being captured the pool must not call the driver at all (a warm-up run fills it first),
/// and the blocks the captured work used are withdrawn from reuse afterwards: the graph writes them on every replay.
/// The driver calls (and how the driver reports running out of memory) are injected so the bookkeeping can be
/// tested without a GPU; on the GPU backend a block is an ILGPU buffer.
/// </summary>
internal sealed class DeviceMemoryPool<TBlock>(Func<long, TBlock> allocate, Action<TBlock> free, Func<Exception, bool> isOutOfMemory) : IDisposable
    where TBlock : notnull
{
    private const long SmallBlock = 1L << 20;
    private const long SmallGranule = 512;
    private const long LargeGranule = 1L << 20;

    private readonly object _gate = new();
    private readonly Dictionary<long, Stack<TBlock>> _cached = [];
    private HashSet<TBlock>? _capturing;
    private bool _disposed;

    /// <summary>Bytes handed out and not yet returned.</summary>
    public long BytesInUse { get; private set; }

    /// <summary>Bytes held in free lists, ready for reuse.</summary>
    public long BytesCached { get; private set; }

    /// <summary>Blocks handed out and not yet returned.</summary>
    public int BlocksInUse { get; private set; }

    /// <summary>How many times the driver was asked for memory (a steady-state generation loop adds none).</summary>
    public int DriverAllocations { get; private set; }

    /// <summary>Sizes are rounded up so near-equal requests share free lists: 512 B steps to 1 MB, 1 MB steps above.</summary>
    public static long RoundSize(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        long granule = bytes <= SmallBlock ? SmallGranule : LargeGranule;
        return Math.Max(granule, (bytes + granule - 1) / granule * granule);
    }

    /// <summary>A block of at least <paramref name="bytes"/>; <paramref name="size"/> is what must be passed back to <see cref="Return"/>.</summary>
    public TBlock Rent(long bytes, out long size)
    {
        size = RoundSize(bytes);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            TBlock pointer;
            if (_cached.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                pointer = stack.Pop();
                BytesCached -= size;
            }
            else if (_capturing != null)
            {
                throw new GraphCaptureException(
                    $"{GpuFormat.Bytes(size)} of device memory was needed while capturing a CUDA graph, and the pool had no free " +
                    "block of that size; warm the pool up by running the captured work once before capturing (GpuBackend.CaptureGraph does), " +
                    "and allocate the tensors the graph reads and writes before capture");
            }
            else
            {
                pointer = AllocateFromDriver(size);
            }
            _capturing?.Add(pointer);
            BytesInUse += size;
            BlocksInUse++;
            return pointer;
        }
    }

    /// <summary>Gives a block back for reuse. After the pool is disposed the context owns (and frees) the memory.</summary>
    public void Return(TBlock pointer, long size)
    {
        lock (_gate)
        {
            if (_disposed) return;
            if (!_cached.TryGetValue(size, out var stack)) _cached[size] = stack = new Stack<TBlock>();
            stack.Push(pointer);
            BytesCached += size;
            BytesInUse -= size;
            BlocksInUse--;
        }
    }

    /// <summary>From now until <see cref="EndCapture"/>, renting only reuses cached blocks and remembers which.</summary>
    public void BeginCapture()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_capturing != null) throw new InvalidOperationException("a graph capture is already in progress");
            _capturing = [];
        }
    }

    /// <summary>
    /// Ends capture mode and withdraws every block the captured work rented and has since returned: they are the
    /// graph's workspace, counted as in use until the caller hands them back with <see cref="Return"/>.
    /// Blocks still held by tensors stay with those tensors.
    /// </summary>
    public List<(TBlock Block, long Size)> EndCapture()
    {
        lock (_gate)
        {
            var touched = _capturing ?? [];
            _capturing = null;
            var reserved = new List<(TBlock, long)>();
            foreach (var (size, stack) in _cached)
            {
                var keep = stack.Where(p => !touched.Contains(p)).Reverse().ToArray();
                foreach (TBlock pointer in stack.Where(touched.Contains)) reserved.Add((pointer, size));
                stack.Clear();
                foreach (TBlock pointer in keep) stack.Push(pointer);
            }
            foreach (var (_, size) in reserved)
            {
                BytesCached -= size;
                BytesInUse += size;
                BlocksInUse++;
            }
            return reserved;
        }
    }

    /// <summary>Hands every cached block back to the driver.</summary>
    public void Trim()
    {
        lock (_gate)
        {
            foreach (var stack in _cached.Values)
                while (stack.Count > 0) free(stack.Pop());
            BytesCached = 0;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            Trim();
            _disposed = true;
        }
    }

    private TBlock AllocateFromDriver(long size)
    {
        DriverAllocations++;
        try
        {
            return allocate(size);
        }
        catch (Exception e) when (isOutOfMemory(e) && BytesCached > 0)
        {
            Trim();
            return allocate(size);
        }
    }
}
