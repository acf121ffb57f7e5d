using System.Runtime.InteropServices;
using Diffusion.Kernels.Backends.Cuda.Interop;

namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// Turns CUresult codes into <see cref="CudaException"/>. The driver names its own errors (cuGetErrorName); the
/// table below covers the codes this backend can meet so a message still reads well when the driver cannot be
/// asked (or in unit tests on a machine without one).
/// </summary>
internal static class CudaErrors
{
    private static readonly Dictionary<int, (string Name, string Description)> Known = new()
    {
        [1] = ("CUDA_ERROR_INVALID_VALUE", "invalid argument"),
        [2] = ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
        [3] = ("CUDA_ERROR_NOT_INITIALIZED", "initialization error"),
        [4] = ("CUDA_ERROR_DEINITIALIZED", "driver shutting down"),
        [34] = ("CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"),
        [100] = ("CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"),
        [101] = ("CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"),
        [200] = ("CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
        [201] = ("CUDA_ERROR_INVALID_CONTEXT", "invalid device context"),
        [209] = ("CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"),
        [218] = ("CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"),
        [222] = ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain"),
        [400] = ("CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
        [500] = ("CUDA_ERROR_NOT_FOUND", "named symbol not found"),
        [600] = ("CUDA_ERROR_NOT_READY", "device not ready"),
        [700] = ("CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
        [701] = ("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"),
        [702] = ("CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"),
        [719] = ("CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
        [900] = ("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"),
        [999] = ("CUDA_ERROR_UNKNOWN", "unknown error"),
    };

    /// <summary>Throws <see cref="CudaException"/> unless <paramref name="result"/> is CUDA_SUCCESS.</summary>
    internal static void Check(int result, string call, string? context = null)
    {
        if (result != 0) throw Create(result, call, context, askDriver: true);
    }

    internal static CudaException Create(int result, string call, string? context, bool askDriver)
    {
        var (name, description) = Describe(result, askDriver);
        return new CudaException(call, result, name, description, context);
    }

    internal static (string Name, string Description) Describe(int result, bool askDriver)
    {
        if (askDriver && TryAskDriver(result, out var fromDriver)) return fromDriver;
        return Known.TryGetValue(result, out var known) ? known : ($"CUDA_ERROR_{result}", "unrecognised CUresult");
    }

    /// <summary>"1.2 GB" style sizes for allocation failures.</summary>
    internal static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.0} GB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.0} MB",
        >= 1L << 10 => $"{bytes / 1024.0:0.0} KB",
        _ => $"{bytes} bytes",
    };

    private static bool TryAskDriver(int result, out (string, string) description)
    {
        description = default;
        if (!NativeLibraries.TryLoadCuda(out _)) return false;
        try
        {
            if (CudaDriver.cuGetErrorName(result, out IntPtr name) != 0 || name == IntPtr.Zero) return false;
            string text = CudaDriver.cuGetErrorString(result, out IntPtr desc) == 0 && desc != IntPtr.Zero
                ? Marshal.PtrToStringUTF8(desc) ?? ""
                : "";
            description = (Marshal.PtrToStringUTF8(name) ?? $"CUDA_ERROR_{result}", text);
            return true;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }
}
