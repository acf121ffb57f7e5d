using Diffusion.Kernels.Backends.Cuda;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// One CUDA backend per kernel-version set for the whole test run, or the reason there is none. Tests that need a
/// GPU call <see cref="Require"/>, which skips them (with the reason) on machines without one.
/// </summary>
internal static class CudaGpu
{
    private static readonly Dictionary<KernelVersions, (CudaBackend? Backend, string Reason)> Backends = [];
    private static readonly object Gate = new();

    public static readonly KernelVersions Simple = KernelVersions.Simple;
    public static readonly KernelVersions Default = KernelVersions.Default;

    /// <summary>Default kernels with half-precision tensor-core convolutions and attention (version 3 of each).</summary>
    public static readonly KernelVersions Half = KernelVersions.Default with { Conv2d = 3, Attention = 3 };

    public static CudaBackend Require(KernelVersions? versions = null)
    {
        versions ??= Default;
        lock (Gate)
        {
            if (!Backends.TryGetValue(versions, out var entry))
            {
                CudaBackend? backend;
                string reason;
                try
                {
                    CudaBackend.TryCreate(out backend, out reason, 0, versions);
                }
                catch (DiffusionException e) when (e.Message.Contains("compute capability", StringComparison.Ordinal))
                {
                    (backend, reason) = (null, e.Message); // a GPU too old for these kernels (half precision before sm_80)
                }
                Backends[versions] = entry = (backend, reason);
            }
            if (entry.Backend == null) Assert.Skip("no usable CUDA GPU: " + entry.Reason);
            return entry.Backend;
        }
    }
}
