using Diffusion.Kernels.Backends.Cuda.Interop;
using static Diffusion.Kernels.Backends.Cuda.CudaErrors;

namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>A loaded kernel entry point and what the launcher needs to know about it.</summary>
internal sealed class CudaFunction(IntPtr handle, string name, int staticSharedBytes)
{
    public IntPtr Handle { get; } = handle;

    public string Name { get; } = name;

    public int StaticSharedBytes { get; } = staticSharedBytes;

    /// <summary>The dynamic shared memory this function has been opted in to (above 48 KB needs cuFuncSetAttribute).</summary>
    public int DynamicSharedLimit { get; set; } = -1;
}

/// <summary>Loads each kernels/*.cu file once (compiling it on first use) and looks up its extern "C" entry points.</summary>
internal sealed unsafe class KernelModules(KernelBuilder builder, DeviceProperties device) : IDisposable
{
    private readonly Dictionary<string, IntPtr> _modules = [];
    private readonly Dictionary<string, CudaFunction> _functions = [];

    public CudaFunction Get(string sourceFile, string entry)
    {
        string key = sourceFile + ":" + entry;
        if (_functions.TryGetValue(key, out var function)) return function;
        IntPtr module = Module(sourceFile);
        Check(CudaDriver.cuModuleGetFunction(out IntPtr handle, module, entry), "cuModuleGetFunction", $"{entry} in {sourceFile}");
        Check(CudaDriver.cuFuncGetAttribute(out int staticShared, CudaFunctionAttribute.SharedSizeBytes, handle),
            "cuFuncGetAttribute", entry);
        function = new CudaFunction(handle, entry, staticShared);
        _functions[key] = function;
        return function;
    }

    public void Dispose()
    {
        foreach (IntPtr module in _modules.Values) CudaDriver.cuModuleUnload(module);
        _modules.Clear();
        _functions.Clear();
    }

    private IntPtr Module(string sourceFile)
    {
        if (_modules.TryGetValue(sourceFile, out IntPtr module)) return module;
        var image = builder.Build(sourceFile, device.Architecture, out _);
        fixed (byte* p = image.Image)
        {
            Check(CudaDriver.cuModuleLoadData(out module, p), "cuModuleLoadData",
                $"loading {sourceFile} ({(image.IsCubin ? "cubin" : "PTX")} for compute {device.ComputeMajor}.{device.ComputeMinor})");
        }
        _modules[sourceFile] = module;
        return module;
    }
}
