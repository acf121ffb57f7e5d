// tensor_cores.cuh — the mma.sync building blocks that version 3 of conv2d.cu and attention.cu share.
//
// KernelSources splices this file in place of its #include line before NVRTC sees the source (with #line
// directives, so compiler messages name the right file and line), and the kernel cache keys on the spliced text.
//
// Fragment layouts of mma.sync.aligned.m16n8k16.row.col (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type"), with g = lane / 4 and t = lane % 4; each 32-bit register holds two halves, the lower index in the
// lower 16 bits:
//   A (16 × 16, row m, col k):   a0 = (g, 2t..2t+1)  a1 = (g+8, 2t..)  a2 = (g, 2t+8..)  a3 = (g+8, 2t+8..)
//   B (16 × 8, row k, col n):    b0 = (2t..2t+1, g)   b1 = (2t+8..2t+9, g)
//   C (16 × 8, float32):         c0, c1 = (g, 2t..2t+1)   c2, c3 = (g+8, 2t..2t+1)
// A tile kept in shared memory as [m][k] and a B tile as [n][k] (k contiguous in both) makes every fragment register
// one aligned 32-bit load.

#pragma once

// Two floats rounded to nearest-even halves, packed low then high (the order the fragments expect).
__device__ __forceinline__ unsigned int tc_pack_half2(float lo, float hi)
{
    unsigned int packed;
    asm("{\n\t.reg .b16 lo16, hi16;\n\t"
        "cvt.rn.f16.f32 lo16, %1;\n\t"
        "cvt.rn.f16.f32 hi16, %2;\n\t"
        "mov.b32 %0, {lo16, hi16};\n\t}"
        : "=r"(packed)
        : "f"(lo), "f"(hi));
    return packed;
}

// d += a · b on one 16 × 8 output fragment.
__device__ __forceinline__ void tc_mma_m16n8k16(float (&d)[4], const unsigned int (&a)[4], unsigned int b0, unsigned int b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The two neighbouring halves at p (4-byte aligned) as one fragment register.
__device__ __forceinline__ unsigned int tc_load_pair(const unsigned short* p)
{
    return *reinterpret_cast<const unsigned int*>(p);
}
