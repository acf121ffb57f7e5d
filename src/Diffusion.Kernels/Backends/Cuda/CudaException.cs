namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>A CUDA driver call failed. The message names the call, the CUDA error name and what was being done.</summary>
public sealed class CudaException : DiffusionException
{
    public CudaException(string call, int errorCode, string errorName, string description, string? context)
        : base($"{call} failed: {errorName} ({description})" + (string.IsNullOrEmpty(context) ? "" : " " + context))
    {
        Call = call;
        ErrorCode = errorCode;
        ErrorName = errorName;
    }

    /// <summary>The driver API function, e.g. "cuMemAlloc_v2".</summary>
    public string Call { get; }

    /// <summary>The CUresult value.</summary>
    public int ErrorCode { get; }

    /// <summary>The CUresult name, e.g. "CUDA_ERROR_OUT_OF_MEMORY".</summary>
    public string ErrorName { get; }

    public bool IsOutOfMemory => ErrorName == "CUDA_ERROR_OUT_OF_MEMORY";
}

/// <summary>A kernel source did not compile, or NVRTC itself failed. Carries the .cu file name and NVRTC's log.</summary>
public sealed class KernelCompileException : DiffusionException
{
    public KernelCompileException(string sourceFile, string message, string log)
        : base($"{sourceFile}: {message}" + (string.IsNullOrWhiteSpace(log) ? "" : Environment.NewLine + log.TrimEnd()))
    {
        SourceFile = sourceFile;
        Log = log;
    }

    public string SourceFile { get; }

    public string Log { get; }
}

/// <summary>Work issued while capturing a CUDA graph did something a graph cannot hold (e.g. needed new device memory).</summary>
public sealed class GraphCaptureException(string message) : DiffusionException(message);
