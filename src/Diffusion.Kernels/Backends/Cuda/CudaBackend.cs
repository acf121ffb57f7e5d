using Diffusion.Kernels.Backends.Cuda.Interop;
using static Diffusion.Kernels.Backends.Cuda.CudaErrors;

namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// The ops of <see cref="IBackend"/> as hand-written CUDA kernels (kernels/*.cu), compiled by NVRTC for the
/// device at first use and launched through the driver API on one stream. Semantics match the CPU backend op for
/// op; see each .cu file for its algorithm and versions. <see cref="CudaBackendOptions"/> picks kernel versions and
/// half precision; <see cref="CaptureGraph"/> records a sequence of ops (a U-Net forward and a sampler step) as one
/// CUDA graph to replay without per-kernel launch overhead.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private const string Conv2dFile = "conv2d.cu";
    private const string GroupNormFile = "group_norm.cu";
    private const string AttentionFile = "attention.cu";
    private const string LinearFile = "linear.cu";
    private const string ElementwiseFile = "elementwise.cu";
    private const string SamplerFile = "sampler.cu";

    private readonly CudaDevice _device;
    private readonly DeviceMemoryPool _pool;
    private readonly KernelModules _modules;
    private readonly KernelVersions _versions;
    private readonly object _gate = new();
    private bool _disposed;

    private CudaBackend(CudaDevice device, KernelBuilder builder, KernelVersions versions)
    {
        _device = device;
        _versions = versions;
        _pool = new DeviceMemoryPool(AllocateDevice, FreeDevice);
        _modules = new KernelModules(builder, device.Properties);
        NvrtcVersion = builder.NvrtcVersion;
    }

    public string Name => "cuda";

    public string DeviceDescription => _device.Properties + $", NVRTC {NvrtcVersion}" + (_versions.Conv2d == 3 ? ", fp16 tensor-core convolutions" : "")
        + (_versions.Attention == 3 ? ", fp16 tensor-core attention" : "");

    /// <summary>The kernel versions this backend launches.</summary>
    public KernelVersions Versions => _versions;

    /// <summary>Theoretical peaks of the device, for benchmarks' "% of peak".</summary>
    public DevicePeak Peak => DevicePeak.For(_device.Properties);

    internal DeviceProperties Properties => _device.Properties;

    internal string NvrtcVersion { get; }

    /// <summary>Bytes of device memory held by live tensors and weights.</summary>
    public long BytesInUse => _pool.BytesInUse;

    /// <summary>Live device blocks; after every tensor and weight is disposed this is zero.</summary>
    public int BlocksInUse => _pool.BlocksInUse;

    /// <summary>Times the driver was asked for memory; the pool makes repeated forwards add none.</summary>
    public int DriverAllocations => _pool.DriverAllocations;

    /// <summary>Free device memory plus what the pool caches, which it hands back before failing an allocation.</summary>
    public long AvailableMemoryBytes
    {
        get
        {
            Enter();
            Check(CudaDriver.cuMemGetInfo_v2(out nuint free, out _), "cuMemGetInfo_v2");
            return (long)free + _pool.BytesCached;
        }
    }

    /// <summary>
    /// Opens GPU <paramref name="ordinal"/>. False, with a reason a person can act on, when the machine has no
    /// NVIDIA driver, cuInit fails, there is no such GPU, or NVRTC cannot be found.
    /// </summary>
    public static bool TryCreate(out CudaBackend? backend, out string reason, int ordinal = 0) =>
        TryCreate(out backend, out reason, new CudaBackendOptions { DeviceOrdinal = ordinal });

    /// <summary>
    /// As above with explicit options. False only when no GPU is usable; options the GPU cannot honour (half precision
    /// before compute capability 8.0) throw a <see cref="DiffusionException"/> rather than silently falling back.
    /// </summary>
    public static bool TryCreate(out CudaBackend? backend, out string reason, CudaBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return TryCreate(out backend, out reason, options.DeviceOrdinal, options.ResolveVersions());
    }

    /// <summary>As above with explicit kernel versions (tests run every version against the reference).</summary>
    internal static bool TryCreate(out CudaBackend? backend, out string reason, int ordinal, KernelVersions versions)
    {
        backend = null;
        versions.Validate();
        if (!CudaDevice.TryOpen(ordinal, out var device, out reason)) return false;
        try
        {
            if ((versions.Conv2d == 3 || versions.Attention == 3) && device!.Properties.Architecture < 80)
            {
                string file = versions.Conv2d == 3 ? Conv2dFile : AttentionFile;
                throw new DiffusionException(
                    $"half precision (kernels/{file} version 3) uses mma.sync m16n8k16, which needs compute capability 8.0 or newer; " +
                    $"{device.Properties} does not have it");
            }
            if (!NvrtcCompiler.TryLoad(out reason))
            {
                device!.Dispose();
                return false;
            }
            var builder = new KernelBuilder(new KernelCache(KernelCache.DefaultDirectory()));
            backend = new CudaBackend(device!, builder, versions);
            return true;
        }
        catch
        {
            device!.Dispose();
            throw;
        }
    }

    public DeviceTensor Allocate(params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        Enter();
        return new CudaTensor(this, _pool, shape);
    }

    public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape)
    {
        var tensor = (CudaTensor)Allocate(shape);
        try
        {
            if (data.Length != tensor.Length)
                throw new DiffusionException($"upload of {data.Length} values into a tensor of shape ({string.Join(", ", shape)})");
            CopyToDevice(tensor.Pointer, data);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    public void Download(DeviceTensor source, Span<float> destination)
    {
        var t = Own(source, nameof(source));
        if (destination.Length != t.Length)
            throw new DiffusionException($"download of {t} into a span of {destination.Length} values");
        Enter();
        fixed (float* d = destination)
        {
            // Pageable destination: the driver stages through its own pinned buffer; the sync makes the data ours.
            Check(CudaDriver.cuMemcpyDtoHAsync_v2(d, t.Pointer, (nuint)(t.Length * sizeof(float)), _device.Stream), "cuMemcpyDtoHAsync_v2",
                $"downloading {t}");
            _device.Synchronize($"downloading {t} (or an earlier kernel failed)");
        }
    }

    public Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        if (spec.InChannels <= 0 || spec.OutChannels <= 0 || spec.Kernel <= 0 || spec.Stride <= 0 || spec.PadBegin < 0 || spec.PadEnd < 0)
            throw new DiffusionException($"invalid convolution {spec}");
        int depth = checked(spec.InChannels * spec.Kernel * spec.Kernel);
        if (weight.Length != (long)spec.OutChannels * depth)
            throw new DiffusionException($"convolution {spec} needs {(long)spec.OutChannels * depth} weights, got {weight.Length}");
        if (bias.Length != 0 && bias.Length != spec.OutChannels)
            throw new DiffusionException($"convolution {spec} needs {spec.OutChannels} biases, got {bias.Length}");

        var biasBuffer = UploadBuffer(bias.Length == 0 ? new float[spec.OutChannels] : bias);
        try
        {
            if (_versions.Conv2d == 3) return PrepareHalfConv2d(spec, weight, depth, biasBuffer);
        }
        catch
        {
            biasBuffer.Dispose();
            throw;
        }
        // (Cout, Cin·K·K) → (Cin·K·K, Cout): the layout conv2d.cu reads coalesced.
        var transposed = new float[weight.Length];
        for (int co = 0; co < spec.OutChannels; co++)
            for (int k = 0; k < depth; k++)
                transposed[(long)k * spec.OutChannels + co] = weight[co * depth + k];
        return new CudaConv2dWeights(spec, UploadBuffer(transposed), biasBuffer, half: false, paddedDepth: depth);
    }

    /// <summary>
    /// conv2d version 3's layout: PyTorch's (Cout, Cin·K·K) rows kept, each rounded to fp16 (nearest-even, as
    /// PyTorch's .half()) and zero-padded to a multiple of 32 values.
    /// </summary>
    private CudaConv2dWeights PrepareHalfConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, int depth, DeviceBuffer biasBuffer)
    {
        int padded = checked((depth + LaunchGeometry.ConvMmaDepthStep - 1) / LaunchGeometry.ConvMmaDepthStep * LaunchGeometry.ConvMmaDepthStep);
        var halves = new ushort[(long)spec.OutChannels * padded];
        for (int co = 0; co < spec.OutChannels; co++)
            for (int k = 0; k < depth; k++)
            {
                float value = weight[co * depth + k];
                if (!float.IsFinite(value) || Math.Abs(value) > (float)Half.MaxValue)
                    throw new DiffusionException($"convolution {spec}: weight {value} at ({co}, {k}) does not fit in half precision");
                halves[(long)co * padded + k] = BitConverter.HalfToUInt16Bits((Half)value);
            }
        Enter();
        var buffer = new DeviceBuffer(_pool, Math.Max(1L, halves.Length) * sizeof(ushort));
        try
        {
            fixed (ushort* h = halves)
            {
                Check(CudaDriver.cuMemcpyHtoDAsync_v2(buffer.Pointer, h, (nuint)halves.Length * sizeof(ushort), _device.Stream),
                    "cuMemcpyHtoDAsync_v2", $"uploading half-precision weights of {spec}");
            }
            return new CudaConv2dWeights(spec, buffer, biasBuffer, half: true, paddedDepth: padded);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    public LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        if (inFeatures <= 0 || outFeatures <= 0) throw new DiffusionException($"invalid linear layer {inFeatures} → {outFeatures}");
        if (weight.Length != (long)inFeatures * outFeatures)
            throw new DiffusionException($"linear {inFeatures} → {outFeatures} needs {(long)inFeatures * outFeatures} weights, got {weight.Length}");
        if (bias.Length != 0 && bias.Length != outFeatures)
            throw new DiffusionException($"linear {inFeatures} → {outFeatures} needs {outFeatures} biases, got {bias.Length}");
        return new CudaLinearWeights(inFeatures, outFeatures, UploadBuffer(weight), UploadBuffer(bias.Length == 0 ? new float[outFeatures] : bias));
    }

    public void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default)
    {
        var tx = Own(x, nameof(x));
        var ty = Own(y, nameof(y));
        if (weights is not CudaConv2dWeights w) throw new DiffusionException("conv2d weights were prepared by another backend");
        var spec = w.Spec;
        RequireRank(tx, 4, "conv2d input");
        if (tx.C != spec.InChannels) throw new DiffusionException($"conv2d {spec}: input {tx} has {tx.C} channels");
        int ho = spec.OutputSize(tx.H), wo = spec.OutputSize(tx.W);
        if (ho <= 0 || wo <= 0) throw new DiffusionException($"conv2d {spec}: input {tx} is smaller than the kernel");
        RequireShape(ty, [tx.N, spec.OutChannels, ho, wo], "conv2d output");
        ulong channelBias = 0, residual = 0;
        if (epilogue.ChannelBias is { } cb)
        {
            var tcb = Own(cb, "channel bias");
            if (tcb.Length != (long)tx.N * spec.OutChannels)
                throw new DiffusionException($"conv2d channel bias {tcb} must hold (N, Cout) = ({tx.N}, {spec.OutChannels}) values");
            channelBias = tcb.Pointer;
        }
        if (epilogue.Residual is { } res)
        {
            var tres = Own(res, "residual");
            if (!tres.SameShape(ty)) throw new DiffusionException($"conv2d residual {tres} must match the output {ty}");
            if (ReferenceEquals(tres, ty) || tres.Pointer == ty.Pointer) throw new DiffusionException("conv2d residual may not alias the output");
            residual = tres.Pointer;
        }
        RequireDistinct(tx, ty, "conv2d");
        Enter();

        ulong px = tx.Pointer, pw = w.Weight, pb = w.Bias, py = ty.Pointer;
        int batch = tx.N, cin = tx.C, h = tx.H, width = tx.W, cout = spec.OutChannels, ks = spec.Kernel, stride = spec.Stride, pad = spec.PadBegin;
        float scale = epilogue.Scale;
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&px), (IntPtr)(&pw), (IntPtr)(&pb), (IntPtr)(&channelBias), (IntPtr)(&residual), (IntPtr)(&py),
            (IntPtr)(&batch), (IntPtr)(&cin), (IntPtr)(&h), (IntPtr)(&width), (IntPtr)(&cout), (IntPtr)(&ho), (IntPtr)(&wo),
            (IntPtr)(&ks), (IntPtr)(&stride), (IntPtr)(&pad), (IntPtr)(&scale),
        };
        if (w.IsHalf)
        {
            int kpad = w.PaddedDepth;
            IntPtr* halfArgs = stackalloc IntPtr[18];
            for (int i = 0; i < 17; i++) halfArgs[i] = args[i];
            halfArgs[17] = (IntPtr)(&kpad);
            string entry = ks switch { 1 => "conv2d_v3_k1", 3 => "conv2d_v3_k3", _ => "conv2d_v3_kn" };
            LaunchKernel(Conv2dFile, entry, LaunchGeometry.Conv2dTensorCore(batch, ho * wo, cout), halfArgs);
        }
        else if (_versions.Conv2d == 1)
        {
            LaunchKernel(Conv2dFile, "conv2d_v1", LaunchGeometry.Elementwise(ty.Length, Properties), args);
        }
        else
        {
            string entry = ks switch { 1 => "conv2d_v2_k1", 3 => "conv2d_v2_k3", _ => "conv2d_v2_kn" };
            LaunchKernel(Conv2dFile, entry, LaunchGeometry.Conv2dTiled(batch, ho * wo, cout), args);
        }
    }

    public void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y)
    {
        var tx = Own(x, nameof(x));
        var ty = Own(y, nameof(y));
        var tg = Own(gamma, nameof(gamma));
        var tb = Own(beta, nameof(beta));
        RequireRank(tx, 4, "group norm input");
        if (groups <= 0 || tx.C % groups != 0) throw new DiffusionException($"group norm: {tx.C} channels do not split into {groups} groups");
        if (tg.Length != tx.C || tb.Length != tx.C) throw new DiffusionException($"group norm: gamma and beta need {tx.C} values each");
        RequireShape(ty, tx.ShapeArray(), "group norm output");
        Enter();

        ulong px = tx.Pointer, pg = tg.Pointer, pb = tb.Pointer, py = ty.Pointer;
        int batch = tx.N, channels = tx.C, hw = tx.H * tx.W, g = groups, applySilu = silu ? 1 : 0;
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&px), (IntPtr)(&pg), (IntPtr)(&pb), (IntPtr)(&py), (IntPtr)(&batch), (IntPtr)(&channels), (IntPtr)(&hw),
            (IntPtr)(&g), (IntPtr)(&eps), (IntPtr)(&applySilu),
        };
        if (_versions.GroupNorm == 1)
            LaunchKernel(GroupNormFile, "group_norm_v1", LaunchGeometry.GroupNormSerial(batch, groups), args);
        else
            LaunchKernel(GroupNormFile, "group_norm_v2", LaunchGeometry.GroupNorm(batch, groups, (long)channels / groups * hw, Properties), args);
    }

    public void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false)
    {
        var tx = Own(x, nameof(x));
        var ty = Own(y, nameof(y));
        if (weights is not CudaLinearWeights w) throw new DiffusionException("linear weights were prepared by another backend");
        if (tx.Rank < 1 || tx.Shape[^1] != w.InFeatures) throw new DiffusionException($"linear {w.InFeatures} → {w.OutFeatures}: input {tx}");
        int rows = (int)(tx.Length / w.InFeatures);
        if (ty.Rank < 1 || ty.Shape[^1] != w.OutFeatures || ty.Length != (long)rows * w.OutFeatures)
            throw new DiffusionException($"linear {w.InFeatures} → {w.OutFeatures}: output {ty} for {rows} rows");
        RequireDistinct(tx, ty, "linear");
        Enter();

        ulong px = tx.Pointer, pw = w.Weight, pb = w.Bias, py = ty.Pointer;
        int r = rows, inF = w.InFeatures, outF = w.OutFeatures, act = siluInput ? 1 : 0;
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&px), (IntPtr)(&pw), (IntPtr)(&pb), (IntPtr)(&py), (IntPtr)(&r), (IntPtr)(&inF), (IntPtr)(&outF), (IntPtr)(&act),
        };
        if (_versions.Linear == 1)
            LaunchKernel(LinearFile, "linear_v1", LaunchGeometry.LinearThreadPerOutput(rows, outF), args);
        else
            LaunchKernel(LinearFile, "linear_v2", LaunchGeometry.LinearWarpPerOutput(rows, outF), args);
    }

    public void SiLU(DeviceTensor x, DeviceTensor y)
    {
        var tx = Own(x, nameof(x));
        var ty = Own(y, nameof(y));
        RequireShape(ty, tx.ShapeArray(), "SiLU output");
        Enter();
        ulong px = tx.Pointer, py = ty.Pointer;
        int count = tx.Count;
        IntPtr* args = stackalloc IntPtr[] { (IntPtr)(&px), (IntPtr)(&py), (IntPtr)(&count) };
        LaunchKernel(ElementwiseFile, "silu", LaunchGeometry.Elementwise(count, Properties), args);
    }

    public void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f)
    {
        var ta = Own(a, nameof(a));
        var tb = Own(b, nameof(b));
        var ty = Own(y, nameof(y));
        if (!ta.SameShape(tb)) throw new DiffusionException($"add: {ta} and {tb} differ in shape");
        RequireShape(ty, ta.ShapeArray(), "add output");
        Enter();
        ulong pa = ta.Pointer, pb = tb.Pointer, py = ty.Pointer;
        int count = ta.Count;
        IntPtr* args = stackalloc IntPtr[] { (IntPtr)(&pa), (IntPtr)(&pb), (IntPtr)(&py), (IntPtr)(&count), (IntPtr)(&scale) };
        LaunchKernel(ElementwiseFile, "add_scaled", LaunchGeometry.Elementwise(count, Properties), args);
    }

    public void Upsample2x(DeviceTensor x, DeviceTensor y)
    {
        var tx = Own(x, nameof(x));
        var ty = Own(y, nameof(y));
        RequireRank(tx, 4, "upsample input");
        RequireShape(ty, [tx.N, tx.C, 2 * tx.H, 2 * tx.W], "upsample output");
        RequireDistinct(tx, ty, "upsample");
        Enter();
        ulong px = tx.Pointer, py = ty.Pointer;
        int planes = tx.N * tx.C, h = tx.H, w = tx.W;
        IntPtr* args = stackalloc IntPtr[] { (IntPtr)(&px), (IntPtr)(&py), (IntPtr)(&planes), (IntPtr)(&h), (IntPtr)(&w) };
        LaunchKernel(ElementwiseFile, "upsample2x", LaunchGeometry.Elementwise(ty.Length, Properties), args);
    }

    public void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y)
    {
        var ta = Own(a, nameof(a));
        var tb = Own(b, nameof(b));
        var ty = Own(y, nameof(y));
        RequireRank(ta, 4, "concat input");
        RequireRank(tb, 4, "concat input");
        if (ta.N != tb.N || ta.H != tb.H || ta.W != tb.W) throw new DiffusionException($"concat: {ta} and {tb} differ outside the channels");
        RequireShape(ty, [ta.N, ta.C + tb.C, ta.H, ta.W], "concat output");
        RequireDistinct(ta, ty, "concat");
        RequireDistinct(tb, ty, "concat");
        Enter();
        ulong pa = ta.Pointer, pb = tb.Pointer, py = ty.Pointer;
        int batch = ta.N, ca = ta.C, cb = tb.C, hw = ta.H * ta.W;
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&pa), (IntPtr)(&pb), (IntPtr)(&py), (IntPtr)(&batch), (IntPtr)(&ca), (IntPtr)(&cb), (IntPtr)(&hw),
        };
        LaunchKernel(ElementwiseFile, "concat_channels", LaunchGeometry.Elementwise(ty.Length, Properties), args);
    }

    public void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y)
    {
        var ty = Own(y, nameof(y));
        RequireRank(ty, 2, "timestep embedding output");
        if (timesteps.Length != ty.N) throw new DiffusionException($"timestep embedding: {timesteps.Length} timesteps for {ty.N} rows");
        // As the CPU backend: half − shift = 0 would divide by zero in the kernel and fill y with NaN and ±inf.
        int half = ty.Shape[1] / 2;
        if (half <= 0 || half - freqShift == 0f)
            throw new DiffusionException($"timestep embedding: dim {ty.Shape[1]} with shift {freqShift} has no frequencies");
        Enter();
        using var t = new DeviceBuffer(_pool, Math.Max(1, timesteps.Length) * sizeof(float));
        CopyToDevice(t.Pointer, timesteps);
        ulong pt = t.Pointer, py = ty.Pointer;
        int batch = ty.N, dim = ty.Shape[1], flip = flipSinToCos ? 1 : 0;
        float negLogMaxPeriod = (float)-Math.Log(10000.0), shift = freqShift;
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&pt), (IntPtr)(&py), (IntPtr)(&batch), (IntPtr)(&dim), (IntPtr)(&flip), (IntPtr)(&negLogMaxPeriod), (IntPtr)(&shift),
        };
        LaunchKernel(ElementwiseFile, "timestep_embedding", LaunchGeometry.Elementwise(ty.Length, Properties), args);
        // Returning t to the pool now is safe: anything that reuses it is issued after this kernel on the same stream.
    }

    public void Attention(DeviceTensor qkv, DeviceTensor y, int heads)
    {
        var tq = Own(qkv, nameof(qkv));
        var ty = Own(y, nameof(y));
        RequireRank(tq, 4, "attention qkv");
        if (tq.C % 3 != 0) throw new DiffusionException($"attention: qkv {tq} must have 3·C channels");
        int channels = tq.C / 3;
        if (heads <= 0 || channels % heads != 0) throw new DiffusionException($"attention: {channels} channels do not split into {heads} heads");
        RequireShape(ty, [tq.N, channels, tq.H, tq.W], "attention output");
        RequireDistinct(tq, ty, "attention");
        Enter();

        ulong pq = tq.Pointer, py = ty.Pointer;
        int c = channels, tokens = tq.H * tq.W, headDim = channels / heads;
        float scale = (float)(1.0 / Math.Sqrt(headDim));
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&pq), (IntPtr)(&py), (IntPtr)(&c), (IntPtr)(&tokens), (IntPtr)(&headDim), (IntPtr)(&scale),
        };
        // Each version falls back to the one before it for shapes it cannot take (v3: heads wider than 256).
        AttentionLaunch? flash = null;
        if (_versions.Attention == 3 && LaunchGeometry.AttentionTensorCore(tq.N, heads, tokens, headDim, Properties) is { } mma)
            flash = new AttentionLaunch("attention_v3", mma);
        if (flash == null && _versions.Attention >= 2)
        {
            flash = LaunchGeometry.AttentionFlash(tq.N, heads, tokens, headDim, Properties,
                _modules.Get(AttentionFile, "attention_v2_q16").StaticSharedBytes,
                _modules.Get(AttentionFile, "attention_v2_q32").StaticSharedBytes);
        }
        if (flash is { } f)
        {
            LaunchKernel(AttentionFile, f.Entry, f.Launch, args);
        }
        else
        {
            int staticBytes = _modules.Get(AttentionFile, "attention_v1").StaticSharedBytes;
            LaunchKernel(AttentionFile, "attention_v1", LaunchGeometry.AttentionPerQuery(tq.N, heads, tokens, Properties, staticBytes), args);
        }
    }

    public void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next)
    {
        var ts = Own(sample, nameof(sample));
        var tm = Own(modelOutput, nameof(modelOutput));
        var tn = Own(next, nameof(next));
        int[] shape = ts.ShapeArray();
        RequireShape(tm, shape, "sampler model output");
        RequireShape(tn, shape, "sampler next sample");
        ulong pNoise = OptionalPointer(noise, shape, "sampler noise");
        ulong pPrev = OptionalPointer(prevX0, shape, "sampler previous x0");
        ulong pX0 = OptionalPointer(x0Out, shape, "sampler x0 output");
        if (noise == null && coefficients.NextFromNoise != 0) throw new DiffusionException("sampler step needs noise: its coefficient is non-zero");
        if (prevX0 == null && coefficients.NextFromPrevX0 != 0) throw new DiffusionException("sampler step needs the previous x0: its coefficient is non-zero");
        Enter();

        ulong pS = ts.Pointer, pM = tm.Pointer, pN = tn.Pointer;
        int count = ts.Count;
        var k = coefficients;
        float a = k.X0FromSample, b = k.X0FromModel, clip = k.ClipRange, c = k.EpsFromSample, d = k.EpsFromModel,
            e = k.NextFromX0, f = k.NextFromEps, g = k.NextFromSample, h = k.NextFromPrevX0, i = k.NextFromNoise;
        IntPtr* args = stackalloc IntPtr[]
        {
            (IntPtr)(&pS), (IntPtr)(&pM), (IntPtr)(&pNoise), (IntPtr)(&pPrev), (IntPtr)(&pX0), (IntPtr)(&pN), (IntPtr)(&count),
            (IntPtr)(&a), (IntPtr)(&b), (IntPtr)(&clip), (IntPtr)(&c), (IntPtr)(&d), (IntPtr)(&e), (IntPtr)(&f), (IntPtr)(&g),
            (IntPtr)(&h), (IntPtr)(&i),
        };
        LaunchKernel(SamplerFile, "sampler_step", LaunchGeometry.Elementwise(count, Properties), args);
    }

    public void Synchronize()
    {
        Enter();
        _device.Synchronize("waiting for the kernels issued so far");
    }

    /// <summary>
    /// Milliseconds the device spent on the work <paramref name="issue"/> enqueues, measured with CUDA events
    /// (so host launch overhead that overlaps GPU work is not counted). For benchmarks.
    /// </summary>
    public float TimeMilliseconds(Action issue)
    {
        ArgumentNullException.ThrowIfNull(issue);
        Enter();
        Check(CudaDriver.cuEventCreate(out IntPtr start, 0), "cuEventCreate");
        try
        {
            Check(CudaDriver.cuEventCreate(out IntPtr end, 0), "cuEventCreate");
            try
            {
                Check(CudaDriver.cuEventRecord(start, _device.Stream), "cuEventRecord");
                issue();
                Check(CudaDriver.cuEventRecord(end, _device.Stream), "cuEventRecord");
                Check(CudaDriver.cuEventSynchronize(end), "cuEventSynchronize", "timing (or a timed kernel failed)");
                Check(CudaDriver.cuEventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
                return ms;
            }
            finally
            {
                CudaDriver.cuEventDestroy_v2(end);
            }
        }
        finally
        {
            CudaDriver.cuEventDestroy_v2(start);
        }
    }

    /// <summary>Hands cached device memory back to the driver (e.g. before handing the GPU to another library).</summary>
    public void TrimMemory()
    {
        Enter();
        _device.Synchronize("trimming the memory pool");
        _pool.Trim();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
        }
        _device.MakeCurrent();
        _device.Synchronize("disposing the CUDA backend");
        _pool.Dispose();
        _modules.Dispose();
        _device.Dispose();
    }

    private void LaunchKernel(string file, string entry, Launch launch, IntPtr* args)
    {
        var function = _modules.Get(file, entry);
        if (launch.DynamicSharedBytes > function.DynamicSharedLimit && launch.DynamicSharedBytes > 0)
        {
            // Above 48 KB per block a kernel must opt in; setting the exact need is harmless below that too.
            Check(CudaDriver.cuFuncSetAttribute(function.Handle, CudaFunctionAttribute.MaxDynamicSharedSizeBytes, launch.DynamicSharedBytes),
                "cuFuncSetAttribute", $"{entry}: {launch.DynamicSharedBytes} bytes of dynamic shared memory");
            function.DynamicSharedLimit = launch.DynamicSharedBytes;
        }
        if (launch.GridX == 0 || launch.GridY == 0 || launch.GridZ == 0) return; // empty tensor: nothing to do
        Check(CudaDriver.cuLaunchKernel(function.Handle, launch.GridX, launch.GridY, launch.GridZ, launch.Threads, 1, 1,
                (uint)launch.DynamicSharedBytes, _device.Stream, args, null), "cuLaunchKernel",
            $"{entry} ({file}) grid ({launch.GridX}, {launch.GridY}, {launch.GridZ}) × {launch.Threads} threads, {launch.DynamicSharedBytes} B dynamic shared memory");
    }

    private void Enter()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _device.MakeCurrent();
    }

    private DeviceBuffer UploadBuffer(ReadOnlySpan<float> values)
    {
        Enter();
        var buffer = new DeviceBuffer(_pool, Math.Max(1L, values.Length) * sizeof(float));
        try
        {
            CopyToDevice(buffer.Pointer, values);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    private void CopyToDevice(ulong destination, ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return;
        if (_capture is { } graph)
        {
            // A graph cannot copy from pageable memory: the values go to pinned memory the graph owns, and every
            // replay copies these same values again.
            IntPtr pinned = graph.Stage(values);
            Check(CudaDriver.cuMemcpyHtoDAsync_v2(destination, (void*)pinned, (nuint)values.Length * sizeof(float), _device.Stream),
                "cuMemcpyHtoDAsync_v2", $"capturing an upload of {values.Length} values");
            return;
        }
        fixed (float* s = values)
        {
            // From pageable memory the call returns once the driver has staged the data, so the span may be reused.
            // The byte count is widened before multiplying: Length · 4 in int wraps from 2^29 values (2 GiB) on.
            Check(CudaDriver.cuMemcpyHtoDAsync_v2(destination, s, (nuint)values.Length * sizeof(float), _device.Stream),
                "cuMemcpyHtoDAsync_v2", $"uploading {values.Length} values");
        }
    }

    private ulong AllocateDevice(long bytes)
    {
        Check(CudaDriver.cuMemAlloc_v2(out ulong pointer, (nuint)bytes), "cuMemAlloc_v2", "allocating " + FormatBytes(bytes));
        return pointer;
    }

    private static void FreeDevice(ulong pointer) => CudaDriver.cuMemFree_v2(pointer);

    private CudaTensor Own(DeviceTensor tensor, string what)
    {
        ArgumentNullException.ThrowIfNull(tensor, what);
        if (tensor is not CudaTensor t || !ReferenceEquals(tensor.Owner, this))
            throw new DiffusionException($"{what} is a {tensor.Owner.Name} tensor; the CUDA backend can only use tensors it allocated");
        return t;
    }

    private ulong OptionalPointer(DeviceTensor? tensor, int[] shape, string what)
    {
        if (tensor == null) return 0;
        var t = Own(tensor, what);
        RequireShape(t, shape, what);
        return t.Pointer;
    }

    private static void RequireRank(DeviceTensor t, int rank, string what)
    {
        if (t.Rank != rank) throw new DiffusionException($"{what} must have rank {rank}, got {t}");
    }

    private static void RequireShape(DeviceTensor t, int[] shape, string what)
    {
        if (!t.Shape.SequenceEqual(shape)) throw new DiffusionException($"{what} must have shape ({string.Join(", ", shape)}), got {t}");
    }

    private static void RequireDistinct(CudaTensor input, CudaTensor output, string op)
    {
        if (input.Pointer == output.Pointer) throw new DiffusionException($"{op}: the output may not alias the input");
    }
}
