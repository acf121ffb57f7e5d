using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Kernels.Models;

/// <summary>
/// The DDPM U-Net of diffusers' <c>UNet2DModel</c>, written once against <see cref="IBackend"/>.
/// <code>
///   emb  = linear_2(SiLU(linear_1(sinusoid(t))))
///   h    = conv_in(x)                                  ─┐ skip stack
///   down: [resnet (→ attention)] × L, downsample       ─┤ each layer's output is pushed
///   mid:  resnet → attention → resnet                   │
///   up:   [concat(h, pop) → resnet (→ attention)] × (L+1), upsample
///   out  = conv_out(SiLU(GroupNorm(h)))
/// </code>
/// Parameters are prepared on the backend once, at construction; <see cref="Forward(DeviceTensor, ReadOnlySpan{float}, DeviceTensor)"/>
/// allocates only activations, which the backend pools.
/// </summary>
public sealed class UNet2D : IDenoiser, IDisposable
{
    private readonly IBackend _backend;
    private readonly List<IDisposable> _parameters = [];
    private readonly Conv2dWeights _convIn;
    private readonly LinearWeights _timeLinear1;
    private readonly LinearWeights _timeLinear2;
    private readonly DownBlock[] _downBlocks;
    private readonly ResnetBlock _midResnet0;
    private readonly AttentionBlock? _midAttention;
    private readonly ResnetBlock _midResnet1;
    private readonly UpBlock[] _upBlocks;
    private readonly Norm _normOut;
    private readonly Conv2dWeights _convOut;

    private UNet2D(UNet2DConfig config, IReadOnlyDictionary<string, HostTensor> tensors, IBackend backend)
    {
        Config = config;
        _backend = backend;
        try
        {
            var p = new ParameterReader(tensors, backend, _parameters, config.NormNumGroups, config.NormEps);
            int levels = config.BlockOutChannels.Count;

            _convIn = p.Conv("conv_in", stride: 1);
            _timeLinear1 = p.Linear("time_embedding.linear_1");
            _timeLinear2 = p.Linear("time_embedding.linear_2");

            _downBlocks = new DownBlock[levels];
            for (int i = 0; i < levels; i++)
            {
                string prefix = $"down_blocks.{i}";
                bool attention = config.DownBlockHasAttention(i);
                _downBlocks[i] = new DownBlock(
                    Enumerable.Range(0, config.LayersPerBlock).Select(j => p.Resnet($"{prefix}.resnets.{j}")).ToArray(),
                    attention
                        ? Enumerable.Range(0, config.LayersPerBlock).Select(j => p.Attention($"{prefix}.attentions.{j}", config, 1f)).ToArray()
                        : [],
                    i < levels - 1 ? p.Downsampler($"{prefix}.downsamplers.0.conv", config.DownsamplePadding) : null);
            }

            // The mid block divides its resnet and attention outputs by mid_block_scale_factor.
            _midResnet0 = p.Resnet("mid_block.resnets.0", config.MidBlockScaleFactor);
            _midAttention = config.AddAttention ? p.Attention("mid_block.attentions.0", config, config.MidBlockScaleFactor) : null;
            _midResnet1 = p.Resnet("mid_block.resnets.1", config.MidBlockScaleFactor);

            _upBlocks = new UpBlock[levels];
            for (int i = 0; i < levels; i++)
            {
                string prefix = $"up_blocks.{i}";
                int layers = config.LayersPerBlock + 1;
                bool attention = config.UpBlockHasAttention(i);
                _upBlocks[i] = new UpBlock(
                    Enumerable.Range(0, layers).Select(j => p.Resnet($"{prefix}.resnets.{j}")).ToArray(),
                    attention
                        ? Enumerable.Range(0, layers).Select(j => p.Attention($"{prefix}.attentions.{j}", config, 1f)).ToArray()
                        : [],
                    i < levels - 1 ? p.Conv($"{prefix}.upsamplers.0.conv", stride: 1) : null);
            }

            _normOut = p.Norm("conv_norm_out");
            _convOut = p.Conv("conv_out", stride: 1);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public UNet2DConfig Config { get; }

    public IBackend Backend => _backend;

    /// <summary>
    /// The image size a sampler starts from: the config's sample_size (diffusers' pipelines need it; 32 when a
    /// config leaves it out, which only fully convolutional use would do).
    /// </summary>
    public (int Channels, int Height, int Width) SampleShape =>
        (Config.InChannels, Config.SampleSize ?? 32, Config.SampleSize ?? 32);

    /// <summary>Loads a diffusers UNet or pipeline folder and prepares its weights on <paramref name="backend"/>.</summary>
    public static UNet2D Load(string modelPath, IBackend backend, CancellationToken cancellationToken = default) =>
        Load(ModelFolder.Open(modelPath), backend, cancellationToken);

    public static UNet2D Load(ModelFolder folder, IBackend backend, CancellationToken cancellationToken = default)
    {
        var checkpoint = UNet2DCheckpoint.Load(folder, cancellationToken);
        return new UNet2D(folder.Config, checkpoint.Tensors, backend);
    }

    /// <summary>Builds the network from tensors already keyed by their diffusers names (tests, synthetic weights).</summary>
    public static UNet2D Create(UNet2DConfig config, IReadOnlyDictionary<string, HostTensor> tensors, IBackend backend) =>
        new(config, tensors, backend);

    /// <summary>Runs one forward pass on the host: sample (B, C, H, W), one timestep per batch item or one for all.</summary>
    public HostTensor Forward(HostTensor sample, ReadOnlySpan<float> timesteps)
    {
        using var x = _backend.Upload(sample.Data, sample.Shape);
        using var y = _backend.Allocate(OutputShape(sample.Shape));
        Forward(x, timesteps, y);
        var result = new HostTensor(y.ShapeArray());
        _backend.Download(y, result.Data);
        return result;
    }

    public int[] OutputShape(ReadOnlySpan<int> sampleShape) => [sampleShape[0], Config.OutChannels, sampleShape[2], sampleShape[3]];

    /// <summary>The forward pass on device tensors: sample (B, C, H, W) → output (B, out_channels, H, W).</summary>
    public void Forward(DeviceTensor sample, ReadOnlySpan<float> timesteps, DeviceTensor output)
    {
        ValidateInputs(sample, timesteps, output);
        int batch = sample.N;
        Span<float> perItem = batch <= 64 ? stackalloc float[batch] : new float[batch];
        if (timesteps.Length == 1) perItem.Fill(timesteps[0]);
        else timesteps.CopyTo(perItem);

        using var emb = TimeEmbedding(perItem);
        var skips = new Stack<DeviceTensor>();
        try
        {
            using (var centred = CenterInput(sample))
                skips.Push(Conv(_convIn, centred ?? sample));
            DeviceTensor h = skips.Peek();

            foreach (var block in _downBlocks)
            {
                for (int j = 0; j < block.Resnets.Length; j++)
                {
                    // Each layer pushes one skip: its attention output when it has attention, else the resnet's.
                    if (block.Attentions.Length > 0)
                    {
                        using var resnetOut = block.Resnets[j].Forward(this, h, emb);
                        h = block.Attentions[j].Forward(this, resnetOut);
                    }
                    else
                    {
                        h = block.Resnets[j].Forward(this, h, emb);
                    }
                    skips.Push(h);
                }
                if (block.Downsampler is { } down)
                {
                    h = Conv(down, h);
                    skips.Push(h);
                }
            }

            // From here on h is owned by this method, not by the skip stack.
            h = _midResnet0.Forward(this, h, emb);
            if (_midAttention is { } midAttention) h = Replace(h, midAttention.Forward(this, h));
            h = Replace(h, _midResnet1.Forward(this, h, emb));

            foreach (var block in _upBlocks)
            {
                for (int j = 0; j < block.Resnets.Length; j++)
                {
                    using (var skip = skips.Pop())
                    using (var joined = _backend.Allocate(h.N, h.C + skip.C, h.H, h.W))
                    {
                        _backend.Concat(h, skip, joined);
                        h = Replace(h, block.Resnets[j].Forward(this, joined, emb));
                    }
                    if (block.Attentions.Length > 0) h = Replace(h, block.Attentions[j].Forward(this, h));
                }
                if (block.Upsampler is { } up)
                {
                    using var doubled = _backend.Allocate(h.N, h.C, h.H * 2, h.W * 2);
                    _backend.Upsample2x(h, doubled);
                    h = Replace(h, Conv(up, doubled));
                }
            }

            using (h)
            {
                _backend.GroupNorm(h, _normOut.Gamma, _normOut.Beta, _normOut.Groups, _normOut.Eps, silu: true, h);
                _backend.Conv2d(h, _convOut, output);
            }
        }
        finally
        {
            while (skips.Count > 0) skips.Pop().Dispose();
        }
    }

    /// <summary>
    /// An upper bound on the activation memory one forward needs, in bytes: the whole skip stack plus the largest
    /// working set of one block (its input, normalised copy, intermediate, shortcut, output, and q/k/v).
    /// </summary>
    public long ActivationBytes(int batch, int height, int width)
    {
        var channels = Config.BlockOutChannels;
        long skips = (long)channels[0] * height * width;
        long widest = (long)Math.Max(Config.InChannels, channels[0]) * height * width;
        int h = height, w = width;
        for (int i = 0; i < channels.Count; i++)
        {
            long level = (long)channels[i] * h * w;
            skips += Config.LayersPerBlock * level;
            // Up blocks concatenate a skip onto their input: twice the widest channel count of this level.
            widest = Math.Max(widest, 2 * (long)Math.Max(channels[i], channels[Math.Min(i + 1, channels.Count - 1)]) * h * w);
            if (i < channels.Count - 1)
            {
                h /= 2;
                w /= 2;
                skips += (long)channels[i] * h * w;
            }
        }
        const int WorkingCopies = 6;
        return sizeof(float) * (long)batch * (skips + WorkingCopies * widest);
    }

    /// <summary>Refuses, before anything is allocated, a batch whose activations would not fit in the backend's free memory.</summary>
    public void EnsureMemoryFor(int batch, int height, int width)
    {
        long needed = ActivationBytes(batch, height, width);
        long available = _backend.AvailableMemoryBytes;
        if (needed > available)
            throw new InsufficientMemoryForBatchException(batch, height, width, needed, available, _backend.Name);
    }

    private void ValidateInputs(DeviceTensor sample, ReadOnlySpan<float> timesteps, DeviceTensor output)
    {
        if (sample.Rank != 4 || sample.C != Config.InChannels)
            throw new DiffusionException($"the U-Net expects a sample of shape (B, {Config.InChannels}, H, W), got ({string.Join(", ", sample.ShapeArray())})");
        int factor = 1 << (Config.BlockOutChannels.Count - 1);
        if (sample.H % factor != 0 || sample.W % factor != 0)
            throw new DiffusionException($"the sample's height and width must be multiples of {factor} for {Config.BlockOutChannels.Count} U-Net levels, got {sample.H}×{sample.W}");
        if (timesteps.Length != 1 && timesteps.Length != sample.N)
            throw new DiffusionException($"expected one timestep or one per batch item ({sample.N}), got {timesteps.Length}");
        if (!output.Shape.SequenceEqual(OutputShape(sample.Shape)))
            throw new DiffusionException($"the output tensor must have shape ({string.Join(", ", OutputShape(sample.Shape))})");
    }

    private DeviceTensor TimeEmbedding(ReadOnlySpan<float> timesteps)
    {
        int batch = timesteps.Length;
        using var sinusoid = _backend.Allocate(batch, _timeLinear1.InFeatures);
        _backend.TimestepEmbedding(timesteps, Config.FlipSinToCos, Config.FreqShift, sinusoid);
        using var hidden = _backend.Allocate(batch, _timeLinear1.OutFeatures);
        _backend.Linear(sinusoid, _timeLinear1, hidden);
        var emb = _backend.Allocate(batch, _timeLinear2.OutFeatures);
        _backend.Linear(hidden, _timeLinear2, emb, siluInput: true);
        return emb;
    }

    /// <summary>center_input_sample: x ↦ 2x − 1, or null when the model does not ask for it.</summary>
    private DeviceTensor? CenterInput(DeviceTensor sample)
    {
        if (!Config.CenterInputSample) return null;
        // The map needs a constant term; the sampler-step kernel is an elementwise affine map with a "noise"
        // operand, so feeding it ones gives 2x − 1 without a kernel of its own for this rare option.
        var ones = new float[sample.Length];
        Array.Fill(ones, 1f);
        using var onesTensor = _backend.Upload(ones, sample.ShapeArray());
        var centred = _backend.Allocate(sample.ShapeArray());
        var affine = new SamplerStepCoefficients(0, 0, float.PositiveInfinity, 0, 0, 0, 0, NextFromSample: 2f, 0, NextFromNoise: -1f);
        _backend.SamplerStep(sample, sample, onesTensor, null, null, affine, centred);
        return centred;
    }

    private DeviceTensor Conv(Conv2dWeights weights, DeviceTensor x, in Conv2dEpilogue epilogue = default)
    {
        var spec = weights.Spec;
        var y = _backend.Allocate(x.N, spec.OutChannels, spec.OutputSize(x.H), spec.OutputSize(x.W));
        _backend.Conv2d(x, weights, y, epilogue);
        return y;
    }

    private static DeviceTensor Replace(DeviceTensor old, DeviceTensor next)
    {
        old.Dispose();
        return next;
    }

    public void Dispose()
    {
        foreach (var parameter in _parameters) parameter.Dispose();
        _parameters.Clear();
    }

    private sealed record Norm(DeviceTensor Gamma, DeviceTensor Beta, int Groups, float Eps);

    private sealed record DownBlock(ResnetBlock[] Resnets, AttentionBlock[] Attentions, Conv2dWeights? Downsampler);

    private sealed record UpBlock(ResnetBlock[] Resnets, AttentionBlock[] Attentions, Conv2dWeights? Upsampler);

    /// <summary>
    /// ResnetBlock2D: h = conv1(SiLU(GN1(x))) + time_emb_proj(SiLU(emb));
    /// out = (shortcut(x) + conv2(SiLU(GN2(h)))) / output_scale_factor.
    /// The time-embedding broadcast and the residual ride in the convolutions' epilogues.
    /// </summary>
    private sealed record ResnetBlock(Norm Norm1, Conv2dWeights Conv1, LinearWeights TimeEmbProj, Norm Norm2, Conv2dWeights Conv2, Conv2dWeights? Shortcut, float OutputScaleFactor)
    {
        public DeviceTensor Forward(UNet2D net, DeviceTensor x, DeviceTensor emb)
        {
            var b = net._backend;
            DeviceTensor h;
            using (var normed = b.Allocate(x.ShapeArray()))
            using (var timeBias = b.Allocate(x.N, TimeEmbProj.OutFeatures))
            {
                b.GroupNorm(x, Norm1.Gamma, Norm1.Beta, Norm1.Groups, Norm1.Eps, silu: true, normed);
                b.Linear(emb, TimeEmbProj, timeBias, siluInput: true);
                h = net.Conv(Conv1, normed, new Conv2dEpilogue(ChannelBias: timeBias));
            }
            using (h)
            {
                b.GroupNorm(h, Norm2.Gamma, Norm2.Beta, Norm2.Groups, Norm2.Eps, silu: true, h);
                float scale = 1f / OutputScaleFactor;
                if (Shortcut is null) return net.Conv(Conv2, h, new Conv2dEpilogue(Residual: x, OutputScale: scale));
                using var shortcut = net.Conv(Shortcut, x);
                return net.Conv(Conv2, h, new Conv2dEpilogue(Residual: shortcut, OutputScale: scale));
            }
        }
    }

    /// <summary>
    /// diffusers' attention block: out = (to_out(attention(q, k, v)) + x) / rescale, with q, k, v linear maps of
    /// GroupNorm(x) over the H·W tokens. A linear map over tokens is a 1×1 convolution in NCHW, and q, k and v
    /// share one, so the tokens are read once and never transposed.
    /// </summary>
    private sealed record AttentionBlock(Norm GroupNorm, Conv2dWeights Qkv, Conv2dWeights ToOut, int Heads, float RescaleOutputFactor)
    {
        public DeviceTensor Forward(UNet2D net, DeviceTensor x)
        {
            var b = net._backend;
            using var normed = b.Allocate(x.ShapeArray());
            b.GroupNorm(x, GroupNorm.Gamma, GroupNorm.Beta, GroupNorm.Groups, GroupNorm.Eps, silu: false, normed);
            using var qkv = net.Conv(Qkv, normed);
            using var attended = b.Allocate(x.ShapeArray());
            b.Attention(qkv, attended, Heads);
            return net.Conv(ToOut, attended, new Conv2dEpilogue(Residual: x, OutputScale: 1f / RescaleOutputFactor));
        }
    }

    /// <summary>
    /// Turns named host tensors into backend parameters, remembering them for disposal.
    /// Every GroupNorm in UNet2DModel uses the same norm_num_groups and norm_eps.
    /// </summary>
    private sealed class ParameterReader(IReadOnlyDictionary<string, HostTensor> tensors, IBackend backend, List<IDisposable> owned, int groups, float eps)
    {
        private HostTensor Get(string name) =>
            tensors.TryGetValue(name, out var t) ? t : throw new DiffusionException($"checkpoint tensor '{name}' is missing");

        private T Own<T>(T item) where T : IDisposable
        {
            owned.Add(item);
            return item;
        }

        public Conv2dWeights Conv(string prefix, int stride, int padBegin = -1, int padEnd = -1)
        {
            var w = Get(prefix + ".weight");
            int k = w.Shape[2];
            int pad = k / 2;
            var spec = new Conv2dSpec(w.Shape[1], w.Shape[0], k, stride, padBegin < 0 ? pad : padBegin, padEnd < 0 ? pad : padEnd);
            return Own(backend.PrepareConv2d(spec, w.Data, Get(prefix + ".bias").Data));
        }

        /// <summary>diffusers' Downsample2D: padding p pads both sides by p; p = 0 pads only right/bottom by one.</summary>
        public Conv2dWeights Downsampler(string prefix, int padding) =>
            padding == 0 ? Conv(prefix, stride: 2, padBegin: 0, padEnd: 1) : Conv(prefix, stride: 2, padBegin: padding, padEnd: padding);

        public LinearWeights Linear(string prefix)
        {
            var w = Get(prefix + ".weight");
            return Own(backend.PrepareLinear(w.Shape[1], w.Shape[0], w.Data, Get(prefix + ".bias").Data));
        }

        public Norm Norm(string prefix)
        {
            var gamma = Get(prefix + ".weight");
            return new Norm(
                Own(backend.Upload(gamma.Data, gamma.Shape)),
                Own(backend.Upload(Get(prefix + ".bias").Data, gamma.Shape)),
                groups,
                eps);
        }

        public ResnetBlock Resnet(string prefix, float outputScaleFactor = 1f)
        {
            return new ResnetBlock(
                Norm(prefix + ".norm1"),
                Conv(prefix + ".conv1", stride: 1),
                Linear(prefix + ".time_emb_proj"),
                Norm(prefix + ".norm2"),
                Conv(prefix + ".conv2", stride: 1),
                tensors.ContainsKey(prefix + ".conv_shortcut.weight") ? Conv(prefix + ".conv_shortcut", stride: 1) : null,
                outputScaleFactor);
        }

        public AttentionBlock Attention(string prefix, UNet2DConfig config, float rescaleOutputFactor)
        {
            var q = Get(prefix + ".to_q.weight");
            int channels = q.Shape[0];
            // Stack W_q, W_k, W_v (each C×C) into one 3C×C pointwise convolution.
            var weight = new float[3 * channels * channels];
            var bias = new float[3 * channels];
            string[] parts = ["to_q", "to_k", "to_v"];
            for (int i = 0; i < 3; i++)
            {
                Get($"{prefix}.{parts[i]}.weight").Data.CopyTo(weight, i * channels * channels);
                Get($"{prefix}.{parts[i]}.bias").Data.CopyTo(bias, i * channels);
            }
            var qkv = Own(backend.PrepareConv2d(Conv2dSpec.Pointwise(channels, 3 * channels), weight, bias));
            var toOutWeight = Get(prefix + ".to_out.0.weight");
            var toOut = Own(backend.PrepareConv2d(Conv2dSpec.Pointwise(channels, channels), toOutWeight.Data, Get(prefix + ".to_out.0.bias").Data));
            return new AttentionBlock(Norm(prefix + ".group_norm"), qkv, toOut,
                config.AttentionHeads(channels), rescaleOutputFactor);
        }
    }
}

/// <summary>A batch or resolution whose activations would not fit in the memory the backend has free.</summary>
public sealed class InsufficientMemoryForBatchException(int batch, int height, int width, long needed, long available, string backend)
    : DiffusionException(
        $"batch {batch} at {height}×{width} needs about {needed / 1048576.0:F0} MiB of memory, " +
        $"but the {backend} backend has {available / 1048576.0:F0} MiB free; a smaller batch or image size fits")
{
    public long NeededBytes { get; } = needed;

    public long AvailableBytes { get; } = available;
}
