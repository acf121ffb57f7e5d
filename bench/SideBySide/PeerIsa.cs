// What ISA libtorch actually runs, read back from libtorch itself rather than trusted from the environment the script
// set (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS). TorchSharp exposes none of this, so these
// bind to libtorch_cpu's exported C++ functions by their mangled names; where a libtorch lacks one, the probe says
// "unknown" and the benchmark still runs.
using System.Runtime.InteropServices;

namespace Diffusion.Kernels.SideBySide;

internal static class PeerIsa
{
    /// <summary>The variables that cap libtorch's ISA, as this process sees them ("(unset)" where not set).</summary>
    public static Dictionary<string, string> Environment() =>
        new[] { "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS" }
            .ToDictionary(name => name, name => System.Environment.GetEnvironmentVariable(name) ?? "(unset)");

    /// <summary>ATen's vectorised-kernel level ("DEFAULT", "AVX2", "AVX512"), from at::get_cpu_capability().</summary>
    public static string AtenCapability()
    {
        // The function returns a std::string by value: on x86-64 System V that is a hidden pointer to 32 bytes the
        // caller provides (libstdc++'s layout: data pointer, length, 16-byte inline buffer).
        IntPtr result = Marshal.AllocHGlobal(32);
        try
        {
            GetCpuCapability(result);
            IntPtr data = Marshal.ReadIntPtr(result, 0);
            long length = Marshal.ReadInt64(result, 8);
            // Names this short live in the inline buffer; a longer one would leak its heap block once, which is fine.
            return Marshal.PtrToStringUTF8(data, (int)length);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return "unknown";
        }
        finally
        {
            Marshal.FreeHGlobal(result);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> with oneDNN's and MKL's verbose modes on (what torch.backends.mkldnn.verbose
    /// and torch.backends.mkl.verbose switch), so each primitive and BLAS call prints the kernel it ran to stdout,
    /// where bench/side_by_side.py reads them. Used once per batch, never while timing: printing costs time.
    /// </summary>
    public static void Verbosely(Action action)
    {
        bool oneDnn = Bound(() => SetOneDnnVerbose(1)), mkl = Bound(() => SetMklVerbose(1));
        try
        {
            action();
        }
        finally
        {
            if (oneDnn) SetOneDnnVerbose(0);
            if (mkl) SetMklVerbose(0);
            // The libraries print through C stdio, which buffers a pipe; .NET writes the JSON answer to the file
            // descriptor itself, so flush first or the kernel lines would arrive after the answer they belong to.
            Flush(IntPtr.Zero);
        }
    }

    /// <summary>Calls <paramref name="call"/>; false where this libtorch does not export the function.</summary>
    private static bool Bound(Func<int> call)
    {
        try
        {
            call();
            return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libtorch_cpu", EntryPoint = "_ZN2at18get_cpu_capabilityB5cxx11Ev")]
    private static extern void GetCpuCapability(IntPtr result);

    // torch::verbose::_mkldnn_set_verbose(int) and _mkl_set_verbose(int), what torch.backends.*.verbose call.
    [DllImport("libtorch_cpu", EntryPoint = "_ZN5torch7verbose19_mkldnn_set_verboseEi")]
    private static extern int SetOneDnnVerbose(int level);

    [DllImport("libtorch_cpu", EntryPoint = "_ZN5torch7verbose16_mkl_set_verboseEi")]
    private static extern int SetMklVerbose(int level);

    [DllImport("libc.so.6", EntryPoint = "fflush")]
    private static extern int Flush(IntPtr stream);
}
