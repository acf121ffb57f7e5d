namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// How a <see cref="CudaBackend"/> is set up. Everything here is chosen once, when the backend is created, so the
/// <see cref="IBackend"/> seam stays float32 and unchanged: precision is a property of how weights are prepared and
/// which kernel runs, not of the tensors callers see.
/// </summary>
public sealed record CudaBackendOptions
{
    /// <summary>Which GPU (CUDA device ordinal).</summary>
    public int DeviceOrdinal { get; init; }

    /// <summary>Kernel versions to launch; null reads DIFFUSION_KERNEL_VERSION_&lt;op&gt; (defaults where unset).</summary>
    public KernelVersions? Versions { get; init; }

    /// <summary>
    /// Run convolutions and attention on tensor cores in half precision (version 3 of kernels/conv2d.cu and
    /// kernels/attention.cu): convolution weights stored as fp16, activations and q, k, v rounded to fp16 as they are
    /// staged, float32 accumulation, softmax and epilogue. About three decimal digits instead of six; needs compute
    /// capability 8.0 or newer. Overrides the conv2d and attention entries of <see cref="Versions"/>.
    /// </summary>
    public bool HalfPrecision { get; init; }

    internal KernelVersions ResolveVersions()
    {
        var versions = Versions ?? KernelVersions.FromEnvironment();
        versions.Validate();
        return HalfPrecision ? versions with { Conv2d = 3, Attention = 3 } : versions;
    }
}
