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

    public static readonly KernelVersions Simple = new(1, 1, 1, 1);
    public static readonly KernelVersions Default = new(2, 2, 2, 2);

    public static CudaBackend Require(KernelVersions? versions = null)
    {
        versions ??= Default;
        lock (Gate)
        {
            if (!Backends.TryGetValue(versions, out var entry))
            {
                CudaBackend.TryCreate(out var backend, out string reason, 0, versions);
                Backends[versions] = entry = (backend, reason);
            }
            if (entry.Backend == null) Assert.Skip("no usable CUDA GPU: " + entry.Reason);
            return entry.Backend;
        }
    }
}
