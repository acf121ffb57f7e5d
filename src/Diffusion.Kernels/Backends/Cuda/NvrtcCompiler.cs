using System.Runtime.InteropServices;
using System.Text;
using Diffusion.Kernels.Backends.Cuda.Interop;

namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>What NVRTC is asked to produce: real code for one architecture (cubin) or virtual code (PTX) for the driver to finish.</summary>
internal readonly record struct KernelTarget(int Architecture, bool Cubin)
{
    /// <summary>The --gpu-architecture value: sm_XY for cubin, compute_XY for PTX.</summary>
    public string GpuArchitecture => (Cubin ? "sm_" : "compute_") + Architecture.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Cubin when NVRTC knows the device's exact architecture (no JIT at load, no driver/PTX version mismatch);
    /// otherwise PTX for the newest architecture NVRTC knows that the device can run, which the driver JIT-compiles.
    /// </summary>
    public static KernelTarget Choose(int deviceArchitecture, IReadOnlyCollection<int> supported)
    {
        if (supported.Contains(deviceArchitecture)) return new KernelTarget(deviceArchitecture, Cubin: true);
        int[] older = supported.Where(a => a <= deviceArchitecture).ToArray();
        if (older.Length == 0)
        {
            throw new DiffusionException(
                $"this NVRTC cannot generate code for compute capability {deviceArchitecture / 10}.{deviceArchitecture % 10} " +
                $"(it supports {string.Join(", ", supported.Order())})");
        }
        return new KernelTarget(older.Max(), Cubin: false);
    }
}

/// <summary>The output of one compilation: the image to hand to cuModuleLoadData and NVRTC's log (ptxas output included).</summary>
internal sealed record CompiledKernel(byte[] Image, bool IsCubin, string Log);

/// <summary>Thin, typed wrapper over NVRTC: version, supported architectures, compile.</summary>
internal static unsafe class NvrtcCompiler
{
    /// <summary>Options every kernel is compiled with. No fast-math: softmax, SiLU and the timestep sinusoids need IEEE expf/sinf/cosf.</summary>
    internal static IReadOnlyList<string> BaseOptions(KernelTarget target) =>
        ["--gpu-architecture=" + target.GpuArchitecture, "-std=c++17", "-default-device"];

    internal static bool TryLoad(out string reason) => NativeLibraries.TryLoadNvrtc(out reason);

    internal static (int Major, int Minor) Version()
    {
        Check(Nvrtc.nvrtcVersion(out int major, out int minor), "nvrtcVersion", "NVRTC");
        return (major, minor);
    }

    internal static int[] SupportedArchitectures()
    {
        Check(Nvrtc.nvrtcGetNumSupportedArchs(out int count), "nvrtcGetNumSupportedArchs", "NVRTC");
        var archs = new int[count];
        fixed (int* p = archs) Check(Nvrtc.nvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs", "NVRTC");
        return archs;
    }

    /// <summary>Compiles one kernel file. Throws <see cref="KernelCompileException"/> with NVRTC's log on failure.</summary>
    internal static CompiledKernel Compile(string fileName, string source, IReadOnlyList<string> options, bool cubin)
    {
        byte[] src = NullTerminated(source);
        byte[] name = NullTerminated(fileName);
        byte[][] opts = options.Select(NullTerminated).ToArray();
        IntPtr program;
        fixed (byte* s = src)
        fixed (byte* n = name)
            Check(Nvrtc.nvrtcCreateProgram(out program, s, n, 0, null, null), "nvrtcCreateProgram", fileName);
        try
        {
            var handles = new GCHandle[opts.Length];
            var pointers = new IntPtr[opts.Length];
            try
            {
                for (int i = 0; i < opts.Length; i++)
                {
                    handles[i] = GCHandle.Alloc(opts[i], GCHandleType.Pinned);
                    pointers[i] = handles[i].AddrOfPinnedObject();
                }
                int result;
                fixed (IntPtr* o = pointers) result = Nvrtc.nvrtcCompileProgram(program, opts.Length, (byte**)o);
                string log = ReadLog(program, fileName);
                if (result != 0)
                    throw new KernelCompileException(fileName, $"NVRTC compilation failed ({ErrorString(result)}) with options {string.Join(' ', options)}", log);
                return new CompiledKernel(cubin ? ReadCubin(program, fileName) : ReadPtx(program, fileName), cubin, log);
            }
            finally
            {
                foreach (var h in handles) if (h.IsAllocated) h.Free();
            }
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    private static string ReadLog(IntPtr program, string fileName)
    {
        Check(Nvrtc.nvrtcGetProgramLogSize(program, out nuint size), "nvrtcGetProgramLogSize", fileName);
        var buffer = new byte[(int)size];
        fixed (byte* b = buffer) Check(Nvrtc.nvrtcGetProgramLog(program, b), "nvrtcGetProgramLog", fileName);
        return Encoding.UTF8.GetString(buffer).TrimEnd('\0');
    }

    private static byte[] ReadPtx(IntPtr program, string fileName)
    {
        Check(Nvrtc.nvrtcGetPTXSize(program, out nuint size), "nvrtcGetPTXSize", fileName);
        var buffer = new byte[(int)size]; // includes the terminating NUL cuModuleLoadData needs for PTX
        fixed (byte* b = buffer) Check(Nvrtc.nvrtcGetPTX(program, b), "nvrtcGetPTX", fileName);
        return buffer;
    }

    private static byte[] ReadCubin(IntPtr program, string fileName)
    {
        Check(Nvrtc.nvrtcGetCUBINSize(program, out nuint size), "nvrtcGetCUBINSize", fileName);
        if (size == 0) throw new KernelCompileException(fileName, "NVRTC produced no cubin (was a compute_XY architecture requested?)", "");
        var buffer = new byte[(int)size];
        fixed (byte* b = buffer) Check(Nvrtc.nvrtcGetCUBIN(program, b), "nvrtcGetCUBIN", fileName);
        return buffer;
    }

    private static void Check(int result, string call, string fileName)
    {
        if (result != 0) throw new KernelCompileException(fileName, $"{call} failed: {ErrorString(result)}", "");
    }

    private static string ErrorString(int result) => Marshal.PtrToStringUTF8(Nvrtc.nvrtcGetErrorString(result)) ?? $"NVRTC error {result}";

    private static byte[] NullTerminated(string text)
    {
        int length = Encoding.UTF8.GetByteCount(text);
        var bytes = new byte[length + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
