namespace Diffusion.Kernels.Backends;

/// <summary>
/// The ops the U-Net is written against, once. The CPU backend implements them in C#, the GPU backend (an NVIDIA GPU,
/// or the emulated device) as the ILGPU kernels of <c>kernels/*.cs</c>; each op has the same name in both. Tensors are float32, NCHW, and belong to the backend
/// that allocated them. Ops run in order on one stream; <see cref="Download"/> waits for them.
/// Unless an op says otherwise, its output must not alias its inputs.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>"cpu", "cuda" or "emulated".</summary>
    string Name { get; }

    /// <summary>A human-readable description of the device (CPU model and threads, GPU name and SMs).</summary>
    string DeviceDescription { get; }

    DeviceTensor Allocate(params int[] shape);

    DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape);

    void Download(DeviceTensor source, Span<float> destination);

    /// <summary>weight: PyTorch layout (out, in, k, k); bias: out values.</summary>
    Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias);

    /// <summary>weight: PyTorch layout (out, in); bias: out values.</summary>
    LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias);

    /// <summary>y (N, Cout, Ho, Wo) = epilogue(conv(x (N, Cin, H, W))). The epilogue's Residual may not alias y.</summary>
    void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default);

    /// <summary>
    /// Group normalisation over (C/groups, H, W) per image with biased variance, then the per-channel affine
    /// gamma·x̂ + beta, then SiLU when <paramref name="silu"/> is set. y may alias x.
    /// </summary>
    void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y);

    /// <summary>y (rows, out) = W · act(x (rows, in)) + b, with act = SiLU when <paramref name="siluInput"/> is set.</summary>
    void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false);

    /// <summary>y = x·σ(x). y may alias x.</summary>
    void SiLU(DeviceTensor x, DeviceTensor y);

    /// <summary>y = (a + b)·scale, same shapes. y may alias a or b.</summary>
    void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f);

    /// <summary>Nearest-neighbour ×2: y (N, C, 2H, 2W).</summary>
    void Upsample2x(DeviceTensor x, DeviceTensor y);

    /// <summary>Channel concatenation: y (N, Ca + Cb, H, W) = [a, b].</summary>
    void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y);

    /// <summary>
    /// Sinusoidal timestep features y (N, dim): half = dim/2, freq_k = exp(−ln(10000)·k/(half − freqShift)),
    /// y = [sin(t·freq), cos(t·freq)], or [cos, sin] when <paramref name="flipSinToCos"/> is set.
    /// </summary>
    void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y);

    /// <summary>
    /// Multi-head scaled dot-product attention over the H·W tokens of each image. qkv (N, 3C, H, W) holds q, k
    /// and v as channel blocks [0, C), [C, 2C), [2C, 3C); head h owns channels [h·d, (h+1)·d) of each, d = C/heads.
    /// y (N, C, H, W) = softmax(q·kᵀ/√d)·v per head, softmax taken in float32 with the row maximum subtracted.
    /// </summary>
    void Attention(DeviceTensor qkv, DeviceTensor y, int heads);

    /// <summary>
    /// The fused sampler update described by <see cref="SamplerStepCoefficients"/>. next may alias sample.
    /// noise and prevX0 may be null when their coefficient is zero; x0Out, when given, receives x0.
    /// </summary>
    void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next);

    /// <summary>
    /// Memory the backend can still hand out for activations, in bytes, so callers can refuse a batch before
    /// allocating it. The default is what the managed heap may still grow into.
    /// </summary>
    long AvailableMemoryBytes
    {
        get
        {
            var info = GC.GetGCMemoryInfo();
            return Math.Max(0, info.TotalAvailableMemoryBytes - info.HeapSizeBytes);
        }
    }

    /// <summary>Waits until every op issued so far has finished.</summary>
    void Synchronize();
}
