using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu.Simd;

/// <summary>
/// The AVX2+FMA tier: 8 floats a vector, 16 ymm registers. The 8×32 tile of the AVX-512 tier would need 19 of them,
/// so the Sgemm tile is 6 rows × 16 columns (BLIS's Haswell shape): 12 accumulators, two B vectors, one broadcast.
/// 12 independent FMA chains still cover the FMA latency (4 cycles) times the pipes (2). Cross-lane moves take an
/// in-lane shuffle plus a 64- or 128-bit permute, since AVX2 shuffles work within 128-bit halves.
/// </summary>
internal readonly unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => 8;
    public static int MR => 6;
    public static int NR => 16;
    public static int FewChannelVectors => 4;

    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* source) => Vector256.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> FusedMultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Fma.MultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Avx.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Avx.Min(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Round(Vector256<float> value) => Avx.RoundToNearestInteger(value);

    /// <summary>2^n built in the exponent bits in two halves, each a normal power of two for n in [-150, 128].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ScaleByPowerOfTwo(Vector256<float> p, Vector256<float> n, Vector256<float> x)
    {
        var k = Avx.ConvertToVector256Int32(n);
        var half = Avx2.ShiftRightArithmetic(k, 1);
        var e = p * PowerOfTwo(half) * PowerOfTwo(k - half);
        return Avx.BlendVariable(x, e, Avx.CompareEqual(x, x));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PowerOfTwo(Vector256<int> k) => Avx2.ShiftLeftLogical(k + Vector256.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    /// <summary>vshufps picks a0 a2 b0 b2 in each 128-bit half; vpermpd puts the four pairs in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Evens(Vector256<float> a, Vector256<float> b) =>
        Avx2.Permute4x64(Avx.Shuffle(a, b, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Odds(Vector256<float> a, Vector256<float> b) =>
        Avx2.Permute4x64(Avx.Shuffle(a, b, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();

    /// <summary>vunpcklps/vunpckhps interleave within 128-bit halves; vperm2f128 joins their lower (upper) halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> InterleaveLower(Vector256<float> a, Vector256<float> b) =>
        Avx.Permute2x128(Avx.UnpackLow(a, b), Avx.UnpackHigh(a, b), 0x20);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> InterleaveUpper(Vector256<float> a, Vector256<float> b) =>
        Avx.Permute2x128(Avx.UnpackLow(a, b), Avx.UnpackHigh(a, b), 0x31);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Gather(float* source, int* indices) => Avx2.GatherVector256(source, Vector256.Load(indices), 4);
}
