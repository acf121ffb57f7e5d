// KernelContext — the one ILGPU context configuration every compilation of these kernels goes through: the
// backend's CUDA and emulated devices (Backends/Gpu/GpuDevice.cs), the PTX gate and `diffuse kernels --ptx`
// (PtxCompiler), so the PTX the gate assembles is the PTX the driver is handed.

using ILGPU;
using ILGPU.Algorithms;

namespace Diffusion.Kernels.Gpu;

public static class KernelContext
{
    /// <summary>
    /// PTX has no exp instruction, and ILGPU's PTX backend implements MathF.Exp only through libdevice (a CUDA
    /// toolkit file a user's machine lacks) or ILGPU.Algorithms' XMath, which scales to base 2 and issues
    /// ex2.approx.f32; without one of them every kernel calling MathF.Exp fails to compile for a GPU. The
    /// emulated device runs .NET's MathF either way.
    /// O2, not O1: CudaAsm.EmitRef passes its operands by reference, and only O2 promotes those to registers; at O1
    /// every mma.sync of conv2d version 3 went through local memory (a 336-byte stack frame the PTX gate rejected).
    /// </summary>
    public static Context.Builder Configure(Context.Builder builder) =>
        builder.EnableAlgorithms().Optimize(OptimizationLevel.O2);
}
