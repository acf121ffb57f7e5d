namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>Turns a kernels/*.cu file into a loadable image for one device: disk cache first, NVRTC otherwise.</summary>
internal sealed class KernelBuilder
{
    private readonly KernelCache _cache;
    private readonly (int Major, int Minor) _nvrtcVersion;
    private readonly int[] _supported;

    public KernelBuilder(KernelCache cache)
    {
        _cache = cache;
        _nvrtcVersion = NvrtcCompiler.Version();
        _supported = NvrtcCompiler.SupportedArchitectures();
    }

    public string NvrtcVersion => $"{_nvrtcVersion.Major}.{_nvrtcVersion.Minor}";

    public KernelTarget TargetFor(int deviceArchitecture) => KernelTarget.Choose(deviceArchitecture, _supported);

    /// <summary>The image for <paramref name="sourceFile"/> (e.g. "conv2d.cu") on an architecture; true in <paramref name="fromCache"/> when no compile ran.</summary>
    public CompiledKernel Build(string sourceFile, int deviceArchitecture, out bool fromCache)
    {
        string source = KernelSources.Read(sourceFile);
        var target = TargetFor(deviceArchitecture);
        var options = NvrtcCompiler.BaseOptions(target);
        string fileName = KernelCache.FileName(sourceFile, target, KernelCache.Key(source, options, _nvrtcVersion));
        if (_cache.TryRead(fileName) is { } cached)
        {
            fromCache = true;
            return new CompiledKernel(cached, target.Cubin, "");
        }
        var compiled = NvrtcCompiler.Compile(sourceFile, source, options, target.Cubin);
        _cache.TryWrite(fileName, compiled.Image);
        fromCache = false;
        return compiled;
    }
}
