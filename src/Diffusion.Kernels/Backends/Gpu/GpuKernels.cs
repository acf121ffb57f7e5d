using ILGPU;
using ILGPU.Runtime;
using K = Diffusion.Kernels.Gpu;

namespace Diffusion.Kernels.Backends.Gpu;

/// <summary>
/// Every kernel the backend launches, loaded into a typed delegate once, at first use, and kept: a swapped
/// argument is a compile error, and a forward pays no per-launch compilation. Loading compiles the C# kernel
/// (to PTX on CUDA, to a .NET method on the emulated device); a failure is reported with the kernel's name.
/// A version added to kernels/ gets its delegate here and its case in the op's method in GpuBackend.Ops.cs.
/// </summary>
internal sealed class GpuKernels(Accelerator accelerator)
{
    private Action<AcceleratorStream, Index1D, K.Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _conv2dV1;
    private Action<AcceleratorStream, Index1D, K.GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _groupNormV1;
    private Action<AcceleratorStream, Index1D, K.AttentionParams, ArrayView<float>, ArrayView<float>>? _attentionV1;
    private Action<AcceleratorStream, Index1D, K.LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _linearV1;
    private Action<AcceleratorStream, Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>>? _silu, _upsample2x;
    private Action<AcceleratorStream, Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _add, _concat;
    private Action<AcceleratorStream, Index1D, K.TimestepEmbeddingParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _timestepEmbedding;
    private Action<AcceleratorStream, Index1D, K.SamplerStepParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>? _samplerStep;

    public Action<AcceleratorStream, Index1D, K.Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Conv2dV1 =>
        _conv2dV1 ??= Load("Conv2d.Version1", () => accelerator.LoadAutoGroupedKernel<Index1D, K.Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Conv2d.Version1));

    public Action<AcceleratorStream, Index1D, K.GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> GroupNormV1 =>
        _groupNormV1 ??= Load("GroupNorm.Version1", () => accelerator.LoadAutoGroupedKernel<Index1D, K.GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.GroupNorm.Version1));

    public Action<AcceleratorStream, Index1D, K.AttentionParams, ArrayView<float>, ArrayView<float>> AttentionV1 =>
        _attentionV1 ??= Load("Attention.Version1", () => accelerator.LoadAutoGroupedKernel<Index1D, K.AttentionParams, ArrayView<float>, ArrayView<float>>(K.Attention.Version1));

    public Action<AcceleratorStream, Index1D, K.LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> LinearV1 =>
        _linearV1 ??= Load("Linear.Version1", () => accelerator.LoadAutoGroupedKernel<Index1D, K.LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Linear.Version1));

    public Action<AcceleratorStream, Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>> SiLU =>
        _silu ??= Load("Elementwise.SiLU", () => accelerator.LoadAutoGroupedKernel<Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>>(K.Elementwise.SiLU));

    public Action<AcceleratorStream, Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>> Upsample2x =>
        _upsample2x ??= Load("Elementwise.Upsample2x", () => accelerator.LoadAutoGroupedKernel<Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>>(K.Elementwise.Upsample2x));

    public Action<AcceleratorStream, Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> Add =>
        _add ??= Load("Elementwise.Add", () => accelerator.LoadAutoGroupedKernel<Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Elementwise.Add));

    public Action<AcceleratorStream, Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> Concat =>
        _concat ??= Load("Elementwise.Concat", () => accelerator.LoadAutoGroupedKernel<Index1D, K.ElementwiseParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Elementwise.Concat));

    public Action<AcceleratorStream, Index1D, K.TimestepEmbeddingParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> TimestepEmbedding =>
        _timestepEmbedding ??= Load("TimestepEmbedding.Version1", () => accelerator.LoadAutoGroupedKernel<Index1D, K.TimestepEmbeddingParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.TimestepEmbedding.Version1));

    public Action<AcceleratorStream, Index1D, K.SamplerStepParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> SamplerStep =>
        _samplerStep ??= Load("SamplerStep.Version1", () => accelerator.LoadAutoGroupedKernel<Index1D, K.SamplerStepParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.SamplerStep.Version1));

    // Versions 2 and 3 come in generic instantiations (tile, kernel size); each is loaded on first use and kept here.
    private readonly Dictionary<string, Delegate> _instances = [];

    public Action<AcceleratorStream, KernelConfig, K.Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Conv2dV2<TTile, TKernel>()
        where TTile : struct, K.IConv2dTile where TKernel : struct, K.IKernelSize =>
        Instance($"Conv2d.Version2<{typeof(TTile).Name}, {typeof(TKernel).Name}>", () =>
            accelerator.LoadKernel<K.Conv2dParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Conv2d.Version2<TTile, TKernel>));

    public Action<AcceleratorStream, KernelConfig, K.GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> GroupNormV2 =>
        Instance("GroupNorm.Version2", () => accelerator.LoadKernel<K.GroupNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.GroupNorm.Version2));

    public Action<AcceleratorStream, KernelConfig, K.AttentionParams, ArrayView<float>, ArrayView<float>> AttentionV2<TTile>() where TTile : struct, K.IAttentionTile =>
        Instance($"Attention.Version2<{typeof(TTile).Name}>", () => accelerator.LoadKernel<K.AttentionParams, ArrayView<float>, ArrayView<float>>(K.Attention.Version2<TTile>));

    public Action<AcceleratorStream, KernelConfig, K.LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> LinearV2 =>
        Instance("Linear.Version2", () => accelerator.LoadKernel<K.LinearParams, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Linear.Version2));

    public Action<AcceleratorStream, KernelConfig, K.Conv2dParams, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> Conv2dV3<TKernel>()
        where TKernel : struct, K.IKernelSize =>
        Instance($"Conv2d.Version3<{typeof(TKernel).Name}>", () =>
            accelerator.LoadKernel<K.Conv2dParams, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(K.Conv2d.Version3<TKernel>));

    public Action<AcceleratorStream, KernelConfig, K.AttentionParams, ArrayView<float>, ArrayView<float>> AttentionV3 =>
        Instance("Attention.Version3", () => accelerator.LoadKernel<K.AttentionParams, ArrayView<float>, ArrayView<float>>(K.Attention.Version3));

    private T Instance<T>(string kernel, Func<T> load) where T : Delegate
    {
        if (_instances.TryGetValue(kernel, out var loaded)) return (T)loaded;
        var created = Load(kernel, load);
        _instances[kernel] = created;
        return created;
    }

    private static T Load<T>(string kernel, Func<T> load)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new GpuDeviceException($"kernels/{kernel.Split('.')[0]}.cs: ILGPU could not compile or load {kernel}: {e.Message}", e);
        }
    }
}
