using System.Runtime.CompilerServices;

namespace Diffusion.Kernels.Sampling;

/// <summary>
/// The float32 Box–Muller of torch's <c>normal_fill_16_AVX2</c>, one lane at a time: avx_mathfun.h's log256_ps
/// and sincos256_ps (Cephes polynomials, by Pommier and Garberoglio), as GCC compiles them for torch's AVX2
/// build. That build passes <c>-mfma</c> and GCC contracts a multiply whose only use is an add into one fused
/// multiply-add, so each such pair below is <see cref="MathF.FusedMultiplyAdd"/>, rounded once; a multiply feeding
/// another multiply stays separate. Where an add has two multiplied operands the earlier multiply is the one fused.
/// Pairs whose product is exact (a power-of-two scale, a small integer times a short constant) round the same
/// either way.
/// </summary>
internal static class TorchAvxMath
{
    private const float TwoPi = (float)(2.0f * Math.PI);

    /// <summary>u1 = 1 − d[j], u2 = d[j + 8] → d[j] = √(−2 log u1)·cos(2π u2), d[j + 8] = …·sin(2π u2), j &lt; 8.</summary>
    public static void NormalFill16(Span<float> data)
    {
        for (int j = 0; j < 8; j++)
        {
            float u1 = 1f - data[j];
            float u2 = data[j + 8];
            float radius = MathF.Sqrt(-2f * Log(u1));
            SinCos(TwoPi * u2, out float sin, out float cos);
            data[j] = radius * cos;
            data[j + 8] = radius * sin;
        }
    }

    /// <summary>log256_ps for x &gt; 0 (callers pass u ∈ (0, 1]).</summary>
    public static float Log(float x)
    {
        x = MathF.Max(x, 1.17549435e-38f); // the smallest normal float: denormals are cut off
        int bits = BitConverter.SingleToInt32Bits(x);
        float e = (bits >>> 23) - 127;
        x = BitConverter.Int32BitsToSingle((bits & ~0x7F800000) | BitConverter.SingleToInt32Bits(0.5f));
        e += 1f;
        // Mantissa in [0.5, 1): below √½ take 2x − 1 and one less exponent, so x − 1 stays in [√½ − 1, √2 − 1).
        bool low = x < 0.707106781186547524f;
        float tmp = low ? x : 0f;
        x -= 1f;
        e -= low ? 1f : 0f;
        x += tmp;

        float z = x * x;
        float y = 7.0376836292E-2f;
        y = MathF.FusedMultiplyAdd(y, x, -1.1514610310E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 1.1676998740E-1f);
        y = MathF.FusedMultiplyAdd(y, x, -1.2420140846E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 1.4249322787E-1f);
        y = MathF.FusedMultiplyAdd(y, x, -1.6668057665E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 2.0000714765E-1f);
        y = MathF.FusedMultiplyAdd(y, x, -2.4999993993E-1f);
        y = MathF.FusedMultiplyAdd(y, x, 3.3333331174E-1f);
        y *= x;
        y = MathF.FusedMultiplyAdd(y, z, e * -2.12194440e-4f);
        y = MathF.FusedMultiplyAdd(-z, 0.5f, y);
        x += y;
        return MathF.FusedMultiplyAdd(e, 0.693359375f, x);
    }

    /// <summary>sincos256_ps: Cody–Waite reduction by π/4 in three parts, then one of two polynomials per output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SinCos(float x, out float sin, out float cos)
    {
        uint signSin = BitConverter.SingleToUInt32Bits(x) & 0x80000000u;
        x = MathF.Abs(x);
        int j = (int)(x * 1.27323954473516f); // 4/π, truncated like cvttps
        j = (j + 1) & ~1;
        float y = j;
        uint swapSin = (uint)(j & 4) << 29;
        bool firstPolynomialForSin = (j & 2) == 0;

        x = MathF.FusedMultiplyAdd(y, -0.78515625f, x);
        x = MathF.FusedMultiplyAdd(y, -2.4187564849853515625e-4f, x);
        x = MathF.FusedMultiplyAdd(y, -3.77489497744594108e-8f, x);

        uint signCos = (uint)(~(j - 2) & 4) << 29;
        signSin ^= swapSin;

        float z = x * x;
        float c = 2.443315711809948E-005f;
        c = MathF.FusedMultiplyAdd(c, z, -1.388731625493765E-003f);
        c = MathF.FusedMultiplyAdd(c, z, 4.166664568298827E-002f);
        c *= z;
        c = MathF.FusedMultiplyAdd(c, z, -(z * 0.5f));
        c += 1f;

        float s = -1.9515295891E-4f;
        s = MathF.FusedMultiplyAdd(s, z, 8.3321608736E-3f);
        s = MathF.FusedMultiplyAdd(s, z, -1.6666654611E-1f);
        s *= z;
        s = MathF.FusedMultiplyAdd(s, x, x);

        float sinMagnitude = firstPolynomialForSin ? s : c;
        float cosMagnitude = firstPolynomialForSin ? c : s;
        sin = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(sinMagnitude) ^ signSin);
        cos = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(cosMagnitude) ^ signCos);
    }
}
