using System.Runtime.InteropServices;

namespace Diffusion.Kernels.Backends.Cuda.Interop;

/// <summary>
/// The slice of the CUDA driver API (libcuda) the backend uses. Every function returns a CUresult; callers pass
/// it through <see cref="CudaErrors.Check"/>. Handles (contexts, modules, functions, streams, events, graphs)
/// are opaque pointers; device memory is a 64-bit CUdeviceptr.
/// </summary>
internal static unsafe partial class CudaDriver
{
    internal const string Library = NativeLibraries.CudaName;

    static CudaDriver() => NativeLibraries.EnsureResolverRegistered();

    [LibraryImport(Library)] internal static partial int cuInit(uint flags);
    [LibraryImport(Library)] internal static partial int cuDriverGetVersion(out int version);
    [LibraryImport(Library)] internal static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Library)] internal static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Library)] internal static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library)] internal static partial int cuDeviceGetAttribute(out int value, CudaDeviceAttribute attribute, int device);
    [LibraryImport(Library)] internal static partial int cuDeviceTotalMem_v2(out nuint bytes, int device);

    [LibraryImport(Library)] internal static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(Library)] internal static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Library)] internal static partial int cuCtxSetCurrent(IntPtr context);

    [LibraryImport(Library)] internal static partial int cuModuleLoadData(out IntPtr module, byte* image);
    [LibraryImport(Library)] internal static partial int cuModuleUnload(IntPtr module);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);
    [LibraryImport(Library)] internal static partial int cuFuncSetAttribute(IntPtr function, CudaFunctionAttribute attribute, int value);
    [LibraryImport(Library)] internal static partial int cuFuncGetAttribute(out int value, CudaFunctionAttribute attribute, IntPtr function);

    [LibraryImport(Library)]
    internal static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY,
        uint blockZ, uint sharedMemoryBytes, IntPtr stream, IntPtr* kernelParams, IntPtr* extra);

    [LibraryImport(Library)] internal static partial int cuMemAlloc_v2(out ulong pointer, nuint bytes);
    [LibraryImport(Library)] internal static partial int cuMemFree_v2(ulong pointer);
    [LibraryImport(Library)] internal static partial int cuMemGetInfo_v2(out nuint free, out nuint total);
    [LibraryImport(Library)] internal static partial int cuMemAllocHost_v2(out IntPtr pointer, nuint bytes);
    [LibraryImport(Library)] internal static partial int cuMemFreeHost(IntPtr pointer);
    [LibraryImport(Library)] internal static partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, IntPtr stream);
    [LibraryImport(Library)] internal static partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, IntPtr stream);

    [LibraryImport(Library)] internal static partial int cuStreamCreate(out IntPtr stream, uint flags);
    [LibraryImport(Library)] internal static partial int cuStreamDestroy_v2(IntPtr stream);
    [LibraryImport(Library)] internal static partial int cuStreamSynchronize(IntPtr stream);

    [LibraryImport(Library)] internal static partial int cuEventCreate(out IntPtr evt, uint flags);
    [LibraryImport(Library)] internal static partial int cuEventDestroy_v2(IntPtr evt);
    [LibraryImport(Library)] internal static partial int cuEventRecord(IntPtr evt, IntPtr stream);
    [LibraryImport(Library)] internal static partial int cuEventSynchronize(IntPtr evt);
    [LibraryImport(Library)] internal static partial int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    [LibraryImport(Library)] internal static partial int cuStreamBeginCapture_v2(IntPtr stream, int mode);
    [LibraryImport(Library)] internal static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);
    [LibraryImport(Library)] internal static partial int cuGraphInstantiateWithFlags(out IntPtr graphExec, IntPtr graph, ulong flags);
    [LibraryImport(Library)] internal static partial int cuGraphLaunch(IntPtr graphExec, IntPtr stream);
    [LibraryImport(Library)] internal static partial int cuGraphExecDestroy(IntPtr graphExec);
    [LibraryImport(Library)] internal static partial int cuGraphDestroy(IntPtr graph);
    [LibraryImport(Library)] internal static partial int cuGraphExecUpdate_v2(IntPtr graphExec, IntPtr graph, out GraphExecUpdateResultInfo resultInfo);

    [LibraryImport(Library)] internal static partial int cuGetErrorName(int error, out IntPtr name);
    [LibraryImport(Library)] internal static partial int cuGetErrorString(int error, out IntPtr description);
}

/// <summary>CUdevice_attribute values from cuda.h (stable ABI).</summary>
internal enum CudaDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    MaxRegistersPerBlock = 12,
    ClockRate = 13,
    MultiprocessorCount = 16,
    MemoryClockRate = 36,
    GlobalMemoryBusWidth = 37,
    MaxThreadsPerMultiprocessor = 39,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerMultiprocessor = 81,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary>CUfunction_attribute values from cuda.h.</summary>
internal enum CudaFunctionAttribute
{
    MaxThreadsPerBlock = 0,
    SharedSizeBytes = 1,
    LocalSizeBytes = 3,
    NumRegisters = 4,
    MaxDynamicSharedSizeBytes = 8,
}

/// <summary>CUgraphExecUpdateResultInfo (CUDA 12+): why an executable graph could not take a new graph's parameters.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GraphExecUpdateResultInfo
{
    public int Result;
    public IntPtr ErrorNode;
    public IntPtr ErrorFromNode;
}

/// <summary>CUstreamCaptureMode values from cuda.h.</summary>
internal static class StreamCaptureMode
{
    /// <summary>
    /// Relaxed: this thread may still make calls that are unsafe during capture (pinned-host allocation for staging
    /// uploads). The backend enforces the rule that matters itself: no device allocation while capturing.
    /// </summary>
    public const int Relaxed = 2;
}
