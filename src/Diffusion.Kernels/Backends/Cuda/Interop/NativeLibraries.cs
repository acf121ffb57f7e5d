using System.Reflection;
using System.Runtime.InteropServices;

namespace Diffusion.Kernels.Backends.Cuda.Interop;

/// <summary>
/// Maps the two logical library names of our P/Invokes to real files. The driver has one stable soname
/// (libcuda.so.1, installed with the display driver); NVRTC's soname changes with each CUDA major version, so it
/// is searched for (see <see cref="NvrtcLocator"/>), and its builtins library is loaded from the same folder first
/// so a second CUDA install elsewhere on the loader path cannot pair a mismatched builtins with it.
/// </summary>
internal static class NativeLibraries
{
    internal const string CudaName = "diffusion-cuda";
    internal const string NvrtcName = "diffusion-nvrtc";

    private static readonly object Gate = new();
    private static bool _registered;
    private static IntPtr _cuda;
    private static IntPtr _nvrtc;
    private static string? _nvrtcPath;

    /// <summary>Where NVRTC was loaded from, once it has been.</summary>
    internal static string? NvrtcPath => _nvrtcPath;

    internal static void EnsureResolverRegistered()
    {
        lock (Gate)
        {
            if (_registered) return;
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
            _registered = true;
        }
    }

    /// <summary>Loads the driver library; false with a reason when this machine has no NVIDIA driver.</summary>
    internal static bool TryLoadCuda(out string reason)
    {
        lock (Gate)
        {
            if (_cuda != IntPtr.Zero)
            {
                reason = "";
                return true;
            }
            string[] names = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];
            foreach (string name in names)
            {
                if (NativeLibrary.TryLoad(name, out _cuda))
                {
                    reason = "";
                    return true;
                }
            }
            reason = $"the CUDA driver library ({string.Join(" or ", names)}) could not be loaded: no NVIDIA driver is installed";
            return false;
        }
    }

    /// <summary>Loads NVRTC; false with a reason naming every place that was tried.</summary>
    internal static bool TryLoadNvrtc(out string reason)
    {
        lock (Gate)
        {
            if (_nvrtc != IntPtr.Zero)
            {
                reason = "";
                return true;
            }
            var tried = new List<string>();
            foreach (string candidate in NvrtcLocator.Candidates(NvrtcLocator.SearchDirectories(), File.Exists))
            {
                tried.Add(candidate);
                if (Path.IsPathRooted(candidate))
                {
                    string? builtins = NvrtcLocator.BuiltinsBeside(candidate, Directory.Exists(Path.GetDirectoryName(candidate))
                        ? Directory.GetFiles(Path.GetDirectoryName(candidate)!)
                        : []);
                    if (builtins != null) NativeLibrary.TryLoad(builtins, out _);
                }
                if (NativeLibrary.TryLoad(candidate, out _nvrtc))
                {
                    _nvrtcPath = candidate;
                    reason = "";
                    return true;
                }
            }
            reason = "NVRTC (libnvrtc) was not found; tried " + string.Join(", ", tried) +
                ". Install the CUDA toolkit's NVRTC or set DIFFUSION_NVRTC to the library's path";
            return false;
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name == CudaName && TryLoadCuda(out _)) return _cuda;
        if (name == NvrtcName && TryLoadNvrtc(out _)) return _nvrtc;
        return IntPtr.Zero;
    }
}
