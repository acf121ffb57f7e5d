// RoundedMath — float32 products and sums rounded one at a time, on every device.
//
// ILGPU writes a C# `a * b + c` as plain mul.f32 and add.f32, and ptxas (and the driver's JIT) fuse such pairs
// into one fma, which rounds once instead of twice. That is more accurate, but it is not the CPU backend's
// arithmetic, and the sampler step is specified to reproduce it to the bit (SamplerStepTests). mul.rn/add.rn
// carry an explicit rounding mode, which PTX forbids ptxas to fuse. The C# branch is what the emulated device
// (and the CPU) runs: .NET never fuses a multiply and an add on its own.

using ILGPU.Runtime.Cuda;

namespace Diffusion.Kernels.Gpu;

public static class RoundedMath
{
    public static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float product, a, b);
            return product;
        }
        return a * b;
    }

    public static float Add(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float sum, a, b);
            return sum;
        }
        return a + b;
    }
}
