using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// e^x for 16 floats at once, for SiLU and the softmax. Vector512.Exp widens to double and costs about 65 cycles a
/// vector here, which made group norm + SiLU run at a tenth of the cache bandwidth; this stays in float32 at a few
/// ulps. x = n·ln2 + r with n = round(x/ln2) and |r| ≤ ln2/2 (ln2 split in a high part exact in float and a low
/// correction, so r carries no cancellation error); e^r is its degree-7 Taylor polynomial, whose truncation error
/// (|r|⁸/8! < 6e-9) is below float32 rounding. With AVX-512, vscalefps multiplies by 2^n, one instruction where
/// forming 2^n in the exponent bits took nine (the exp is ~15 instructions, SiLU's whole cost); without it 2^n goes
/// into the exponent bits in two halves. Either way results that overflow become ∞ and tiny ones subnormal or 0
/// through ordinary rounding. NaN passes through.
/// </summary>
internal static class VectorExp
{
    private const float Log2E = 1.44269504f;
    private const float Ln2High = 0.693359375f;    // 355/512: 9 significant bits, so n·Ln2High is exact for |n| < 2^15
    private const float Ln2Low = -2.12194440e-4f;  // ln2 − Ln2High

    // Beyond these e^x is ∞ or 0 in float32; clamping keeps n inside int range for ±∞ and huge inputs.
    private const float Highest = 89f;
    private const float Lowest = -104f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        // vmaxps/vminps return their second operand when either is NaN, so with x second a NaN passes through.
        var clamped = Avx512F.IsSupported
            ? Avx512F.Min(Vector512.Create(Highest), Avx512F.Max(Vector512.Create(Lowest), x))
            : Vector512.Min(Vector512.Max(x, Vector512.Create(Lowest)), Vector512.Create(Highest));
        var n = Vector512.Round(clamped * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2High), clamped);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Low), r);

        var p = Polynomial(r);
        if (Avx512F.IsSupported)
        {
            // vscalefps computes p·2^n in one instruction, rounding overflow to ∞ and underflow to subnormals or 0.
            return Avx512F.Scale(p, n);
        }

        // n lies in [-150, 128] (the clamped range times log2 e); each half in [-75, 64] is a normal power of two.
        var k = Vector512.ConvertToInt32(n);
        var half = Vector512.ShiftRightArithmetic(k, 1);
        var e = p * PowerOfTwo(half) * PowerOfTwo(k - half);
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), e, x);
    }

    /// <summary>e^r for |r| ≤ ln2/2: Horner's rule on the degree-7 Taylor polynomial.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Polynomial(Vector512<float> r)
    {
        var p = Vector512.Create(1f / 5040);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        return Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
    }

    private static Vector512<float> PowerOfTwo(Vector512<int> k) =>
        Vector512.ShiftLeft(k + Vector512.Create(127), 23).AsSingle();
}
