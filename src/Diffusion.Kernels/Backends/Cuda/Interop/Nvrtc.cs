using System.Runtime.InteropServices;

namespace Diffusion.Kernels.Backends.Cuda.Interop;

/// <summary>The NVRTC runtime compiler (libnvrtc): CUDA C++ source in, PTX or cubin out.</summary>
internal static unsafe partial class Nvrtc
{
    internal const string Library = NativeLibraries.NvrtcName;

    static Nvrtc() => NativeLibraries.EnsureResolverRegistered();

    [LibraryImport(Library)] internal static partial int nvrtcVersion(out int major, out int minor);
    [LibraryImport(Library)] internal static partial int nvrtcGetNumSupportedArchs(out int count);
    [LibraryImport(Library)] internal static partial int nvrtcGetSupportedArchs(int* archs);
    [LibraryImport(Library)] internal static partial IntPtr nvrtcGetErrorString(int result);

    [LibraryImport(Library)]
    internal static partial int nvrtcCreateProgram(out IntPtr program, byte* source, byte* name, int numHeaders, byte** headers,
        byte** includeNames);

    [LibraryImport(Library)] internal static partial int nvrtcDestroyProgram(ref IntPtr program);
    [LibraryImport(Library)] internal static partial int nvrtcCompileProgram(IntPtr program, int numOptions, byte** options);
    [LibraryImport(Library)] internal static partial int nvrtcGetProgramLogSize(IntPtr program, out nuint size);
    [LibraryImport(Library)] internal static partial int nvrtcGetProgramLog(IntPtr program, byte* log);
    [LibraryImport(Library)] internal static partial int nvrtcGetPTXSize(IntPtr program, out nuint size);
    [LibraryImport(Library)] internal static partial int nvrtcGetPTX(IntPtr program, byte* ptx);
    [LibraryImport(Library)] internal static partial int nvrtcGetCUBINSize(IntPtr program, out nuint size);
    [LibraryImport(Library)] internal static partial int nvrtcGetCUBIN(IntPtr program, byte* cubin);
}
