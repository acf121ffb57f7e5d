// TensorCores — the mma.sync building blocks version 3 of Conv2d and Attention share: one warp-wide
// D = A·B + C on a 16 × 8 × 16 tile with half inputs and float32 accumulation, and rounding floats to half pairs.
//
// On a GPU, Mma is the PTX instruction mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (inline assembly, sm_80+).
// Everywhere else (the emulated device) it is C# that does what the instruction does, lane by lane: each lane
// gathers the A and B registers it needs from the lanes that hold them, with warp shuffles, exactly as the hardware
// distributes the fragments, so the emulator checks every kernel's fragment bookkeeping (which lane loads which
// element, which accumulator is which output) on every push.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), g = lane / 4 and
// t = lane % 4; each 32-bit register holds two halves, the lower k (or column) in the lower 16 bits:
//   A (16 × 16, row m, col k):   A0 = (g, 2t..2t+1)   A1 = (g+8, 2t..2t+1)   A2 = (g, 2t+8..2t+9)   A3 = (g+8, 2t+8..2t+9)
//   B (16 × 8, row k, col n):    B0 = (2t..2t+1, g)   B1 = (2t+8..2t+9, g)
//   C, D (16 × 8, float32):      C0, C1 = (g, 2t), (g, 2t+1)    C2, C3 = (g+8, 2t), (g+8, 2t+1)
// So output (g, 2t) needs row g of A — registers A0, A2 of lanes 4g..4g+3 — and column 2t of B — registers B0, B1 of
// lanes 8t..8t+3; column 2t+1 is held by lanes 8t+4..8t+7.

using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Diffusion.Kernels.Gpu;

/// <summary>One lane's share of the 16 × 16 half A operand: four registers of two halves each.</summary>
public struct FragmentA
{
    public uint A0, A1, A2, A3;
}

/// <summary>One lane's share of the 16 × 8 half B operand.</summary>
public struct FragmentB
{
    public uint B0, B1;
}

/// <summary>One lane's share of the 16 × 8 float32 accumulator.</summary>
public struct Accumulator
{
    public float C0, C1, C2, C3;
}

public static class TensorCores
{
    /// <summary>d = a·b + c over the warp; every lane of the warp must call it together.</summary>
    public static Accumulator Mma(Accumulator c, FragmentA a, FragmentB b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> d0 = c.C0, d1 = c.C1, d2 = c.C2, d3 = c.C3;
            Input<uint> a0 = a.A0, a1 = a.A1, a2 = a.A2, a3 = a.A3, b0 = b.B0, b1 = b.B1;
            CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};",
                ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            return new Accumulator { C0 = d0.Value, C1 = d1.Value, C2 = d2.Value, C3 = d3.Value };
        }
        return Emulate(c, a, b);
    }

    /// <summary>
    /// What mma.sync m16n8k16 computes for this lane, from the operands every lane holds: for each of the four lanes
    /// j that share this lane's A rows (4g + j) and B columns (8t + j, 8t + 4 + j), their registers arrive by shuffle
    /// and cover k = 2j, 2j+1 (A0/A1 against B0) and 2j+8, 2j+9 (A2/A3 against B1). Products of halves are exact in
    /// float32; the sums run in float32 as on the hardware (whose order within the 16 is unspecified).
    /// </summary>
    public static Accumulator Emulate(Accumulator c, FragmentA a, FragmentB b)
    {
        int lane = Warp.LaneIdx;
        int g = lane / 4, t = lane % 4;
        float d0 = c.C0, d1 = c.C1, d2 = c.C2, d3 = c.C3;
        for (int j = 0; j < 4; j++)
        {
            var rows = Warp.Shuffle(a, 4 * g + j);
            var even = Warp.Shuffle(b, 8 * t + j);
            var odd = Warp.Shuffle(b, 8 * t + 4 + j);
            d0 += Dot(rows.A0, even.B0) + Dot(rows.A2, even.B1);
            d1 += Dot(rows.A0, odd.B0) + Dot(rows.A2, odd.B1);
            d2 += Dot(rows.A1, even.B0) + Dot(rows.A3, even.B1);
            d3 += Dot(rows.A1, odd.B0) + Dot(rows.A3, odd.B1);
        }
        return new Accumulator { C0 = d0, C1 = d1, C2 = d2, C3 = d3 };
    }

    /// <summary>
    /// This lane's A fragment from a shared tile of half pairs stored [m][k] (k contiguous, rowWords words a row):
    /// rows row and row + 8 (row = the tile's first row + g), k-pair words word and word + 4 (word = first k/2 + t).
    /// </summary>
    public static FragmentA LoadA(ArrayView<uint> tile, int rowWords, int row, int word) => new()
    {
        A0 = tile[row * rowWords + word],
        A1 = tile[(row + 8) * rowWords + word],
        A2 = tile[row * rowWords + word + 4],
        A3 = tile[(row + 8) * rowWords + word + 4],
    };

    /// <summary>This lane's B fragment from a shared tile stored [n][k]: column col (= first column + g), words word and word + 4.</summary>
    public static FragmentB LoadB(ArrayView<uint> tile, int rowWords, int col, int word) => new()
    {
        B0 = tile[col * rowWords + word],
        B1 = tile[col * rowWords + word + 4],
    };

    /// <summary>lo(x)·lo(y) + hi(x)·hi(y) of two half pairs.</summary>
    private static float Dot(uint x, uint y) =>
        HalfToFloat(x & 0xFFFF) * HalfToFloat(y & 0xFFFF) + HalfToFloat(x >> 16) * HalfToFloat(y >> 16);

    private static float HalfToFloat(uint bits) => Interop.IntAsFloat((ushort)bits);

    /// <summary>Two floats rounded to nearest-even halves, packed low then high (the order fragments expect).</summary>
    public static uint PackHalf2(float lo, float hi)
    {
        if (CudaAsm.IsSupported)
        {
            Output<uint> packed = default;
            Input<float> l = lo, h = hi;
            CudaAsm.EmitRef("{\n\t.reg .b16 lo16, hi16;\n\tcvt.rn.f16.f32 lo16, %1;\n\tcvt.rn.f16.f32 hi16, %2;\n\tmov.b32 %0, {lo16, hi16};\n\t}",
                ref packed, ref l, ref h);
            return packed.Value;
        }
        return RoundToHalf(lo) | (uint)RoundToHalf(hi) << 16;
    }

    /// <summary>
    /// float → IEEE half bits, round to nearest even, as cvt.rn.f16.f32 does. (ILGPU.Half's own conversion on the
    /// CPU truncates the mantissa, which would make the emulator round differently from the GPU.) Overflow gives
    /// infinity, NaN stays NaN, results below 2^−14 become subnormal.
    /// </summary>
    public static ushort RoundToHalf(float value)
    {
        uint x = Interop.FloatAsInt(value);
        uint sign = (x >> 16) & 0x8000u;
        x &= 0x7FFFFFFFu;
        uint bits;
        if (x >= 0x47800000u) bits = x > 0x7F800000u ? 0x7E00u : 0x7C00u; // ≥ 65536 (or inf/NaN): inf or NaN
        else if (x < 0x38800000u)
        {
            // Subnormal or zero: adding 0.5 lines the 10 mantissa bits up at the bottom of the float, and the
            // float addition itself rounds to nearest even.
            bits = Interop.FloatAsInt(Interop.IntAsFloat(x) + 0.5f) - 0x3F000000u;
        }
        else
        {
            uint odd = (x >> 13) & 1u;
            bits = (x + 0xC8000FFFu + odd) >> 13; // rebias the exponent (−112 << 23) and round half to even
        }
        return (ushort)(bits | sign);
    }
}
