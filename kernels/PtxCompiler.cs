// PtxCompiler — a catalog entry point compiled to PTX by ILGPU with no GPU present: what the driver is handed at
// run time. The PTX gate (tests/.../Gpu/PtxGateTests.cs) assembles it with ptxas; `diffuse kernels --ptx` writes it.
//
// ILGPU takes the capabilities (half arithmetic, shuffles, ...) from the architecture asked for but writes
// `.target` as the lowest architecture that has them, so PTX generated for sm_90 says `.target sm_80`. That is
// deliberate and harmless: the driver's JIT compiles sm_80 PTX for whatever newer GPU loads it, and the gate does
// the same with `ptxas -arch=sm_90`. The PTX ISA is 7.8, the newest that Debian's ptxas 11.8 reads; drivers from
// CUDA 11.8 on read it too.

using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Diffusion.Kernels.Gpu;

public sealed class PtxCompiler : IDisposable
{
    /// <summary>The architectures the gate checks and <c>diffuse kernels --arch</c> accepts.</summary>
    public static IReadOnlyList<string> Architectures { get; } = ["sm_80", "sm_90"];

    private readonly Context _context;
    private readonly PTXBackend _backend;

    /// <param name="architecture">"sm_80" or "sm_90".</param>
    public PtxCompiler(string architecture)
    {
        var arch = architecture switch
        {
            "sm_80" => CudaArchitecture.SM_80,
            "sm_90" => CudaArchitecture.SM_90,
            _ => throw new ArgumentException($"'{architecture}' is not a supported architecture ({string.Join(", ", Architectures)})", nameof(architecture)),
        };
        Architecture = architecture;
        _context = Context.Create(b => KernelContext.Configure(b));
        _backend = new PTXBackend(_context, new CudaCapabilityContext(arch), arch, CudaInstructionSet.ISA_78, nvvmAPI: null);
    }

    public string Architecture { get; }

    /// <summary>The PTX module holding <paramref name="entry"/>'s kernel (one .entry, named by ILGPU).</summary>
    public string Compile(KernelEntry entry)
    {
        var description = entry.Grouping == KernelGrouping.Implicit
            ? EntryPointDescription.FromImplicitlyGroupedKernel(entry.Method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(entry.Method);
        return ((PTXCompiledKernel)_backend.Compile(description, KernelSpecialization.Empty)).PTXAssembly;
    }

    /// <summary>"Conv2d.Version2-Conv2dTile64-KernelSize3.ptx": the entry's name with its type arguments, safe in a shell.</summary>
    public static string FileName(KernelEntry entry) =>
        entry.Name.Replace("<", "-", StringComparison.Ordinal).Replace(", ", "-", StringComparison.Ordinal).Replace(">", "", StringComparison.Ordinal) + ".ptx";

    public void Dispose()
    {
        _backend.Dispose();
        _context.Dispose();
    }
}
