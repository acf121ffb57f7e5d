using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// e^x for a vector of floats on any tier, for SiLU and the softmax. Vector512.Exp widens to double and costs about 65 cycles a
/// vector here, which made group norm + SiLU run at a tenth of the cache bandwidth; this stays in float32 at a few
/// ulps. x = n·ln2 + r with n = round(x/ln2) and |r| ≤ ln2/2 (ln2 split in a high part exact in float and a low
/// correction, so r carries no cancellation error); e^r is its degree-7 Taylor polynomial, whose truncation error
/// (|r|⁸/8! < 6e-9) is below float32 rounding. The tier multiplies by 2^n (ISimd.ScaleByPowerOfTwo): AVX-512's
/// vscalefps is one instruction where forming 2^n in the exponent bits takes nine (the exp is ~15 instructions,
/// SiLU's whole cost); narrower tiers put 2^n into the exponent bits in two halves. Either way results that overflow become ∞ and tiny ones subnormal or 0
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
    public static TV Exp<T, TV>(TV x) where T : struct, ISimd<TV> where TV : struct
    {
        // With x second, x86's maxps/minps return it when it is NaN, so a NaN passes through to the end.
        var clamped = T.Min(T.Broadcast(Highest), T.Max(T.Broadcast(Lowest), x));
        var n = T.Round(T.Multiply(clamped, T.Broadcast(Log2E)));
        var r = T.FusedMultiplyAdd(n, T.Broadcast(-Ln2High), clamped);
        r = T.FusedMultiplyAdd(n, T.Broadcast(-Ln2Low), r);
        return T.ScaleByPowerOfTwo(Polynomial<T, TV>(r), n, x);
    }

    /// <summary>e^r for |r| ≤ ln2/2: Horner's rule on the degree-7 Taylor polynomial.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Polynomial<T, TV>(TV r) where T : struct, ISimd<TV> where TV : struct
    {
        var one = T.Broadcast(1f);
        var p = T.Broadcast(1f / 5040);
        p = T.FusedMultiplyAdd(p, r, T.Broadcast(1f / 720));
        p = T.FusedMultiplyAdd(p, r, T.Broadcast(1f / 120));
        p = T.FusedMultiplyAdd(p, r, T.Broadcast(1f / 24));
        p = T.FusedMultiplyAdd(p, r, T.Broadcast(1f / 6));
        p = T.FusedMultiplyAdd(p, r, T.Broadcast(0.5f));
        p = T.FusedMultiplyAdd(p, r, one);
        return T.FusedMultiplyAdd(p, r, one);
    }
}
