namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>A kernel launch shape: grid (x, y, z), threads per block, dynamic shared memory.</summary>
internal readonly record struct Launch(uint GridX, uint GridY, uint GridZ, uint Threads, int DynamicSharedBytes = 0);

/// <summary>The attention kernel variant and launch shape chosen for one problem.</summary>
internal readonly record struct AttentionLaunch(string Entry, Launch Launch);

/// <summary>
/// Launch shapes as pure functions of the problem and the device's properties, so they can be tested with made-up
/// devices. Tile sizes here must match the constants in the corresponding kernels/*.cu file.
/// </summary>
internal static class LaunchGeometry
{
    internal const int ElementwiseThreads = 256;
    internal const int ConvTileChannels = 64;   // conv2d.cu BM
    internal const int ConvTilePixels = 64;     // conv2d.cu BN
    internal const int ConvThreads = 256;       // conv2d.cu THREADS
    internal const int ConvMmaTile = 64;        // conv2d.cu conv2d_mma::BM and BN
    internal const int ConvMmaThreads = 128;    // conv2d.cu conv2d_mma::THREADS
    internal const int ConvMmaDepthStep = 32;   // conv2d.cu conv2d_mma::BK: half weights are padded to a multiple
    internal const int AttentionKeyTile = 32;   // attention.cu KT
    internal const int AttentionChunk = 32;     // attention.cu DC
    internal const int AttentionMmaQueries = 64;       // attention.cu attention_mma::BQ
    internal const int AttentionMmaKeys = 32;          // attention.cu attention_mma::KT
    internal const int AttentionMmaMaxHeadDim = 256;   // attention.cu attention_mma::DMAX
    internal const int AttentionMmaThreads = 128;      // attention.cu attention_mma::THREADS
    internal const int AttentionMmaPad = 8;            // attention.cu attention_mma::PAD
    internal const int LinearThreads = 256;     // 8 warps, one output each

    /// <summary>
    /// Grid for a grid-stride loop: one block per 256 values up to enough blocks to fill every SM to its thread
    /// limit, twice over (so a straggling SM does not leave the tail idle); the loop covers the rest.
    /// </summary>
    public static Launch Elementwise(long count, DeviceProperties device)
    {
        long needed = Math.Max(1, (count + ElementwiseThreads - 1) / ElementwiseThreads);
        long resident = (long)device.MultiprocessorCount * Math.Max(1, device.MaxThreadsPerMultiprocessor / ElementwiseThreads) * 2;
        return new Launch((uint)Math.Min(needed, Math.Max(1, resident)), 1, 1, ElementwiseThreads);
    }

    /// <summary>conv2d_v2: one block per 64 × 64 tile of (output pixels over the batch) × (output channels).</summary>
    public static Launch Conv2dTiled(int batch, int outputPixels, int outChannels) =>
        ConvTiles(batch, outputPixels, outChannels, ConvTilePixels, ConvTileChannels, ConvThreads);

    /// <summary>conv2d_v3: one block of 4 warps per 64 × 64 tile of (output pixels over the batch) × (output channels).</summary>
    public static Launch Conv2dTensorCore(int batch, int outputPixels, int outChannels) =>
        ConvTiles(batch, outputPixels, outChannels, ConvMmaTile, ConvMmaTile, ConvMmaThreads);

    private static Launch ConvTiles(int batch, int outputPixels, int outChannels, int tilePixels, int tileChannels, uint threads)
    {
        long columns = (long)batch * outputPixels;
        long gridX = (columns + tilePixels - 1) / tilePixels;
        long gridY = (outChannels + tileChannels - 1) / tileChannels;
        if (gridY > 65535) throw new DiffusionException($"conv2d: {outChannels} output channels exceed the kernel's grid limit");
        return new Launch((uint)gridX, (uint)gridY, 1, threads);
    }

    /// <summary>group_norm_v2: one block per (image, group), threads matched to the group size (at most 256).</summary>
    public static Launch GroupNorm(int batch, int groups, long countPerGroup, DeviceProperties device)
    {
        int warp = device.WarpSize;
        long threads = Math.Clamp((countPerGroup + warp - 1) / warp * warp, warp, Math.Min(256, device.MaxThreadsPerBlock));
        return new Launch((uint)(batch * groups), 1, 1, (uint)threads);
    }

    /// <summary>group_norm_v1: one thread per (image, group).</summary>
    public static Launch GroupNormSerial(int batch, int groups) =>
        new((uint)((batch * groups + 63) / 64), 1, 1, 64);

    /// <summary>linear_v2: one warp per output value.</summary>
    public static Launch LinearWarpPerOutput(int rows, int outFeatures)
    {
        long warpsPerBlock = LinearThreads / 32;
        long outputs = (long)rows * outFeatures;
        return new Launch((uint)((outputs + warpsPerBlock - 1) / warpsPerBlock), 1, 1, LinearThreads);
    }

    /// <summary>linear_v1: one thread per output value.</summary>
    public static Launch LinearThreadPerOutput(int rows, int outFeatures) =>
        new((uint)(((long)rows * outFeatures + LinearThreads - 1) / LinearThreads), 1, 1, LinearThreads);

    /// <summary>attention_v1: one block per (query, head, image); the score row lives in dynamic shared memory.</summary>
    public static Launch AttentionPerQuery(int batch, int heads, int tokens, DeviceProperties device, int staticSharedBytes)
    {
        int dynamicBytes = checked(tokens * sizeof(float));
        if (dynamicBytes + staticSharedBytes > device.SharedMemoryPerBlockOptin)
        {
            throw new DiffusionException(
                $"attention over {tokens} tokens needs {dynamicBytes + staticSharedBytes} bytes of shared memory per block; " +
                $"{device.Name} allows {device.SharedMemoryPerBlockOptin}");
        }
        return new Launch((uint)tokens, (uint)heads, (uint)batch, 128, dynamicBytes);
    }

    /// <summary>
    /// attention_v2: 32 queries per block when that still gives every SM at least one block and fits in shared
    /// memory, else 16 (twice the blocks, half the shared memory). Null when neither fits: the caller falls back
    /// to attention_v1.
    /// </summary>
    public static AttentionLaunch? AttentionFlash(int batch, int heads, int tokens, int headDim, DeviceProperties device,
        int staticSharedQ16, int staticSharedQ32)
    {
        foreach (var (queries, staticBytes) in new[] { (32, staticSharedQ32), (16, staticSharedQ16) })
        {
            long blocks = (long)(tokens + queries - 1) / queries * heads * batch;
            bool enoughBlocks = blocks >= device.MultiprocessorCount || queries == 16;
            long dynamicBytes = (long)queries * (headDim + 1) * sizeof(float);
            if (!enoughBlocks || dynamicBytes + staticBytes > device.SharedMemoryPerBlockOptin) continue;
            var launch = new Launch((uint)((tokens + queries - 1) / queries), (uint)heads, (uint)batch, (uint)(8 * queries),
                (int)dynamicBytes);
            return new AttentionLaunch(queries == 32 ? "attention_v2_q32" : "attention_v2_q16", launch);
        }
        return null;
    }

    /// <summary>
    /// attention_v3: one block of 4 warps per 64 queries of a (head, image). Dynamic shared memory holds the block's
    /// queries, one 32-key tile of K and one of V in half precision, the head dimension padded to a multiple of 16
    /// (71 KB at d = 256). Null when the head is wider than the 256 columns of output the kernel keeps in registers or
    /// the tiles do not fit: the caller runs attention_v2.
    /// </summary>
    public static Launch? AttentionTensorCore(int batch, int heads, int tokens, int headDim, DeviceProperties device)
    {
        if (headDim > AttentionMmaMaxHeadDim) return null;
        int padded = (headDim + 15) / 16 * 16;
        int halves = (AttentionMmaQueries + AttentionMmaKeys) * (padded + AttentionMmaPad) + padded * (AttentionMmaKeys + AttentionMmaPad);
        int dynamicBytes = halves * sizeof(ushort);
        if (dynamicBytes > device.SharedMemoryPerBlockOptin) return null;
        return new Launch((uint)((tokens + AttentionMmaQueries - 1) / AttentionMmaQueries), (uint)heads, (uint)batch,
            AttentionMmaThreads, dynamicBytes);
    }
}
