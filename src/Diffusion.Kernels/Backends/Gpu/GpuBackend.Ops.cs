using Diffusion.Kernels.Gpu;
using ILGPU;

namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// The ops: each checks its contract (<see cref="OpContract"/>), fills its kernel's params struct and launches
/// the version <see cref="Versions"/> names. Optional tensors are replaced by a one-element placeholder and a flag.
/// </summary>
public sealed partial class GpuBackend
{
    private readonly Dictionary<(int Dim, float Shift), GpuTensor> _frequencies = [];
    private GpuTensor? _timestepSlot;
    private GpuTensor? _coefficientSlot;

    public Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        OpContract.PrepareConv2d(spec, weight.Length, bias.Length);
        int depth = spec.InChannels * spec.Kernel * spec.Kernel;
        var w = (GpuTensor)Upload(weight, spec.OutChannels, depth);
        GpuTensor? b = null;
        try
        {
            b = (GpuTensor)Upload(bias, spec.OutChannels);
            if (Versions.Conv2d != 3) return new GpuConv2dWeights(spec, w, b);
            // Half pairs travel as the bits of floats (the pool hands out float tensors); the kernel views them as halves.
            var halves = Kernels.Gpu.Conv2d.Version3Weights(weight, spec.OutChannels, depth);
            var h = (GpuTensor)Upload(System.Runtime.InteropServices.MemoryMarshal.Cast<ILGPU.Half, float>(halves), halves.Length / 2);
            return new GpuConv2dWeights(spec, w, b, h);
        }
        catch
        {
            w.Dispose();
            b?.Dispose();
            throw;
        }
    }

    public void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        if (weights is not GpuConv2dWeights w || !ReferenceEquals(w.Weight.Owner, this))
            throw new BackendArgumentException($"Conv2d: weights were not prepared by this {Name} backend");
        var spec = w.Spec;
        var (ho, wo) = OpContract.Conv2d(x, spec, y, epilogue);
        var cb = epilogue.ChannelBias is { } c ? Mine(c, "epilogue.ChannelBias") : null;
        var res = epilogue.Residual is { } r ? Mine(r, "epilogue.Residual") : null;
        var p = new Conv2dParams
        {
            Batch = x.N, InChannels = x.C, Height = x.H, Width = x.W, OutChannels = spec.OutChannels, OutHeight = ho, OutWidth = wo,
            Kernel = spec.Kernel, Stride = spec.Stride, Pad = spec.PadBegin, Scale = epilogue.Scale,
            HasChannelBias = cb == null ? 0 : 1, HasResidual = res == null ? 0 : 1,
        };
        var cbView = (cb ?? _placeholder).View;
        var resView = (res ?? _placeholder).View;
        void Version2<TTile, TKernel>() where TTile : struct, IConv2dTile where TKernel : struct, IKernelSize =>
            Launch($"Conv2d.Version2<{typeof(TTile).Name}, {typeof(TKernel).Name}>", p.OutputCount, () => _kernels.Conv2dV2<TTile, TKernel>()(
                _device.Stream, Kernels.Gpu.Conv2d.Version2Launch<TTile>(p), p, xt.View, w.Weight.View, w.Bias.View, cbView, resView, yt.View));
        switch (Versions.Conv2d)
        {
            // The narrow tile for few output channels; the kernel size fixed at compile time where the U-Net has it.
            case 3:
                var halfView = w.HalfWeight!.View.Cast<ILGPU.Half>();
                void Version3<TKernel>() where TKernel : struct, IKernelSize =>
                    Launch($"Conv2d.Version3<{typeof(TKernel).Name}>", p.OutputCount, () => _kernels.Conv2dV3<TKernel>()(
                        _device.Stream, Kernels.Gpu.Conv2d.Version3Launch(p), p, xt.View, halfView, w.Bias.View, cbView, resView, yt.View));
                if (spec.Kernel == 3) Version3<KernelSize3>();
                else if (spec.Kernel == 1) Version3<KernelSize1>();
                else Version3<KernelSizeAny>();
                break;
            case 2 when spec.OutChannels <= new Conv2dTile32().Channels:
                if (spec.Kernel == 3) Version2<Conv2dTile32, KernelSize3>();
                else if (spec.Kernel == 1) Version2<Conv2dTile32, KernelSize1>();
                else Version2<Conv2dTile32, KernelSizeAny>();
                break;
            case 2:
                if (spec.Kernel == 3) Version2<Conv2dTile64, KernelSize3>();
                else if (spec.Kernel == 1) Version2<Conv2dTile64, KernelSize1>();
                else Version2<Conv2dTile64, KernelSizeAny>();
                break;
            default:
                Launch("Conv2d.Version1", p.OutputCount, () =>
                    _kernels.Conv2dV1(_device.Stream, p.OutputCount, p, xt.View, w.Weight.View, w.Bias.View, cbView, resView, yt.View));
                break;
        }
    }

    public void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        var gt = Mine(gamma, nameof(gamma));
        var bt = Mine(beta, nameof(beta));
        OpContract.GroupNorm(x, gamma, beta, groups, eps, y);
        var p = new GroupNormParams
        {
            Batch = x.N, Channels = x.C, Pixels = (int)(x.Length / ((long)x.N * x.C)), Groups = groups, Eps = eps, Silu = silu ? 1 : 0,
        };
        switch (Versions.GroupNorm)
        {
            case 2:
                Launch("GroupNorm.Version2", p.GroupCount, () =>
                    _kernels.GroupNormV2(_device.Stream, Kernels.Gpu.GroupNorm.Version2Launch(p), p, xt.View, gt.View, bt.View, yt.View));
                break;
            default:
                Launch("GroupNorm.Version1", p.GroupCount, () => _kernels.GroupNormV1(_device.Stream, p.GroupCount, p, xt.View, gt.View, bt.View, yt.View));
                break;
        }
    }

    public LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        OpContract.PrepareLinear(inFeatures, outFeatures, weight.Length, bias.Length);
        var w = (GpuTensor)Upload(weight, outFeatures, inFeatures);
        try
        {
            return new GpuLinearWeights(inFeatures, outFeatures, w, (GpuTensor)Upload(bias, outFeatures));
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    public void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        if (weights is not GpuLinearWeights w || !ReferenceEquals(w.Weight.Owner, this))
            throw new BackendArgumentException($"Linear: weights were not prepared by this {Name} backend");
        OpContract.Linear(x, weights, y);
        var p = new LinearParams { Rows = x.Shape[0], In = w.InFeatures, Out = w.OutFeatures, SiluInput = siluInput ? 1 : 0 };
        switch (Versions.Linear)
        {
            case 2:
                Launch("Linear.Version2", p.OutputCount, () =>
                    _kernels.LinearV2(_device.Stream, Kernels.Gpu.Linear.Version2Launch(p), p, xt.View, w.Weight.View, w.Bias.View, yt.View));
                break;
            default:
                Launch("Linear.Version1", p.OutputCount, () => _kernels.LinearV1(_device.Stream, p.OutputCount, p, xt.View, w.Weight.View, w.Bias.View, yt.View));
                break;
        }
    }

    public void SiLU(DeviceTensor x, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        OpContract.SiLU(x, y);
        Launch("Elementwise.SiLU", (int)x.Length, () => _kernels.SiLU(_device.Stream, (int)x.Length, default, xt.View, yt.View));
    }

    public void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f)
    {
        var at = Mine(a, nameof(a));
        var bt = Mine(b, nameof(b));
        var yt = Mine(y, nameof(y));
        OpContract.Add(a, b, y);
        var p = new ElementwiseParams { Scale = scale };
        Launch("Elementwise.Add", (int)a.Length, () => _kernels.Add(_device.Stream, (int)a.Length, p, at.View, bt.View, yt.View));
    }

    public void Upsample2x(DeviceTensor x, DeviceTensor y)
    {
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        OpContract.Upsample2x(x, y);
        var p = new ElementwiseParams { Height = x.H, Width = x.W };
        Launch("Elementwise.Upsample2x", (int)y.Length, () => _kernels.Upsample2x(_device.Stream, (int)y.Length, p, xt.View, yt.View));
    }

    public void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y)
    {
        var at = Mine(a, nameof(a));
        var bt = Mine(b, nameof(b));
        var yt = Mine(y, nameof(y));
        OpContract.Concat(a, b, y);
        var p = new ElementwiseParams { ChannelsA = a.C, ChannelsB = b.C, Pixels = a.H * a.W };
        Launch("Elementwise.Concat", (int)y.Length, () => _kernels.Concat(_device.Stream, (int)y.Length, p, at.View, bt.View, yt.View));
    }

    /// <summary>
    /// The timesteps go to a device tensor the kernel reads (while a graph is being recorded they are not copied:
    /// <see cref="GpuGraph.Replay"/> writes them before each launch); the frequency table is computed on the host once
    /// per (dim, shift), in the CPU backend's float32 order.
    /// </summary>
    public void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y)
    {
        var yt = Mine(y, nameof(y));
        int dim = OpContract.TimestepEmbedding(timesteps.Length, freqShift, y);
        var frequencies = Frequencies(dim, freqShift);
        var slot = TimestepSlot(timesteps.Length);
        if (!_recording) CopyIn(slot, timesteps);
        var p = new TimestepEmbeddingParams { Batch = timesteps.Length, Dim = dim, FlipSinToCos = flipSinToCos ? 1 : 0 };
        Launch("TimestepEmbedding.Version1", (int)y.Length, () => _kernels.TimestepEmbedding(_device.Stream, (int)y.Length, p, slot.View, frequencies.View, yt.View));
    }

    public void Attention(DeviceTensor qkv, DeviceTensor y, int heads)
    {
        var qt = Mine(qkv, nameof(qkv));
        var yt = Mine(y, nameof(y));
        int channels = OpContract.Attention(qkv, y, heads);
        int headDim = channels / heads;
        var p = new AttentionParams { Batch = qkv.N, Channels = channels, Tokens = qkv.H * qkv.W, HeadDim = headDim, Scale = (float)(1.0 / Math.Sqrt(headDim)) };
        void Version2<TTile>() where TTile : struct, IAttentionTile =>
            Launch($"Attention.Version2<{typeof(TTile).Name}>", p.OutputCount, () =>
                _kernels.AttentionV2<TTile>()(_device.Stream, Kernels.Gpu.Attention.Version2Launch<TTile>(p), p, qt.View, yt.View));
        // 32 queries per block read K and V half as often as 16, but make half as many blocks: worth it only when
        // there are enough blocks to fill the GPU twice over.
        long blocks32 = (long)(p.Tokens + 31) / 32 * heads * p.Batch;
        switch (Versions.Attention)
        {
            case 3:
                Launch("Attention.Version3", p.OutputCount, () =>
                    _kernels.AttentionV3(_device.Stream, Kernels.Gpu.Attention.Version3Launch(p), p, qt.View, yt.View));
                break;
            case 2 when blocks32 >= 2L * _device.Accelerator.NumMultiprocessors:
                Version2<AttentionTile32>();
                break;
            case 2:
                Version2<AttentionTile16>();
                break;
            default:
                Launch("Attention.Version1", p.OutputCount, () => _kernels.AttentionV1(_device.Stream, p.OutputCount, p, qt.View, yt.View));
                break;
        }
    }

    /// <summary>The coefficients go to a device tensor the kernel reads, like the timesteps (see <see cref="TimestepEmbedding"/>).</summary>
    public void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next)
    {
        var st = Mine(sample, nameof(sample));
        var mt = Mine(modelOutput, nameof(modelOutput));
        var nt = Mine(next, nameof(next));
        var zt = noise == null ? null : Mine(noise, nameof(noise));
        var pt = prevX0 == null ? null : Mine(prevX0, nameof(prevX0));
        var ot = x0Out == null ? null : Mine(x0Out, nameof(x0Out));
        OpContract.SamplerStep(sample, modelOutput, noise, prevX0, x0Out, coefficients, next);
        var slot = CoefficientSlot();
        if (!_recording) CopyIn(slot, Pack(coefficients));
        var p = new SamplerStepParams { HasNoise = zt == null ? 0 : 1, HasPrevX0 = pt == null ? 0 : 1, HasX0Out = ot == null ? 0 : 1 };
        var (z, prev, x0) = ((zt ?? _placeholder).View, (pt ?? _placeholder).View, (ot ?? _placeholder).View);
        Launch("SamplerStep.Version1", (int)sample.Length, () =>
            _kernels.SamplerStep(_device.Stream, (int)sample.Length, p, slot.View, st.View, mt.View, z, prev, x0, nt.View));
    }

    internal static float[] Pack(in SamplerStepCoefficients k)
    {
        var values = new float[SamplerStepSlot.Count];
        values[SamplerStepSlot.X0FromSample] = k.X0FromSample;
        values[SamplerStepSlot.X0FromModel] = k.X0FromModel;
        values[SamplerStepSlot.ClipRange] = k.ClipRange;
        values[SamplerStepSlot.EpsFromSample] = k.EpsFromSample;
        values[SamplerStepSlot.EpsFromModel] = k.EpsFromModel;
        values[SamplerStepSlot.NextFromX0] = k.NextFromX0;
        values[SamplerStepSlot.NextFromEps] = k.NextFromEps;
        values[SamplerStepSlot.NextFromSample] = k.NextFromSample;
        values[SamplerStepSlot.NextFromPrevX0] = k.NextFromPrevX0;
        values[SamplerStepSlot.NextFromNoise] = k.NextFromNoise;
        return values;
    }

    private GpuTensor Frequencies(int dim, float shift)
    {
        if (_frequencies.TryGetValue((dim, shift), out var table)) return table;
        int half = dim / 2;
        float logPeriod = (float)-Math.Log(10000.0);
        float denominator = half - shift;
        var values = new float[half];
        for (int k = 0; k < half; k++) values[k] = MathF.Exp(logPeriod * k / denominator);
        table = (GpuTensor)Upload(values, half);
        _frequencies[(dim, shift)] = table;
        return table;
    }

    /// <summary>
    /// One device tensor for the timesteps, reused by every call: the copy into it and the kernel reading it are
    /// ordered on the stream, so the next call's copy cannot overtake this call's kernel.
    /// </summary>
    private GpuTensor TimestepSlot(int count)
    {
        if (_timestepSlot is { } slot && slot.Length == count) return slot;
        if (_recording) throw new GraphCaptureException($"a graph recorded a timestep embedding of {count} timesteps before any was run; warm up first");
        _timestepSlot?.Dispose();
        return _timestepSlot = (GpuTensor)Allocate(count);
    }

    private GpuTensor CoefficientSlot() => _coefficientSlot ??= (GpuTensor)Allocate(SamplerStepSlot.Count);

    private void Launch(string kernel, int threads, Action launch)
    {
        if (threads == 0) return; // an empty tensor: nothing to do
        Run($"launching {kernel} over {threads} threads", launch);
    }
}
