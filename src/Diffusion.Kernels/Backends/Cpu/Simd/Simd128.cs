using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Diffusion.Kernels.Backends.Cpu.Simd;

/// <summary>
/// The 128-bit tier: 4 floats a vector, Arm64 AdvSimd (NEON) or x86 SSE, and plain Vector128 anywhere else. Its
/// blocking follows the register file: Arm64 has 32 vector registers, so the Sgemm tile keeps the AVX-512 tier's 8
/// rows (16 accumulators, enough for 4 FMA pipes of 4-cycle latency) and the few-channel conv 8 vectors a channel;
/// x86 has 16 xmm registers and takes the AVX2 tier's 6 rows and 4 vectors. FMA is Fma (x86) or AdvSimd's fmla
/// (Arm); a CPU with neither multiplies and adds. Every operation names its instruction per ISA, so no Vector128
/// call here falls back to a software loop.
/// </summary>
internal readonly unsafe struct Simd128 : ISimd<Vector128<float>>
{
    public static int Count => 4;
    public static int MR => AdvSimd.Arm64.IsSupported ? 8 : 6;
    public static int NR => 8;
    public static int FewChannelVectors => AdvSimd.Arm64.IsSupported ? 8 : 4;

    public static Vector128<float> Zero => Vector128<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load(float* source) => Vector128.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Broadcast(float value) => Vector128.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> FusedMultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c)
    {
        if (Fma.IsSupported) return Fma.MultiplyAdd(a, b, c);
        if (AdvSimd.IsSupported) return AdvSimd.FusedMultiplyAdd(c, a, b);
        return a * b + c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max(Vector128<float> a, Vector128<float> b)
    {
        if (Sse.IsSupported) return Sse.Max(a, b);
        if (AdvSimd.IsSupported) return AdvSimd.Max(a, b);
        return Vector128.Max(a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Min(Vector128<float> a, Vector128<float> b)
    {
        if (Sse.IsSupported) return Sse.Min(a, b);
        if (AdvSimd.IsSupported) return AdvSimd.Min(a, b);
        return Vector128.Min(a, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Round(Vector128<float> value)
    {
        if (Sse41.IsSupported) return Sse41.RoundToNearestInteger(value);
        if (AdvSimd.IsSupported) return AdvSimd.RoundToNearest(value);
        return Vector128.Round(value);
    }

    /// <summary>2^n built in the exponent bits in two halves, each a normal power of two for n in [-150, 128].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ScaleByPowerOfTwo(Vector128<float> p, Vector128<float> n, Vector128<float> x)
    {
        var k = Vector128.ConvertToInt32(n);
        var half = Vector128.ShiftRightArithmetic(k, 1);
        var e = p * PowerOfTwo(half) * PowerOfTwo(k - half);
        return Vector128.ConditionalSelect(Vector128.Equals(x, x), e, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> PowerOfTwo(Vector128<int> k) => Vector128.ShiftLeft(k + Vector128.Create(127), 23).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> value) => Vector128.Sum(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Evens(Vector128<float> a, Vector128<float> b)
    {
        if (Sse.IsSupported) return Sse.Shuffle(a, b, 0b10_00_10_00);
        if (AdvSimd.Arm64.IsSupported) return AdvSimd.Arm64.UnzipEven(a, b);
        return Vector128.Create(a[0], a[2], b[0], b[2]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Odds(Vector128<float> a, Vector128<float> b)
    {
        if (Sse.IsSupported) return Sse.Shuffle(a, b, 0b11_01_11_01);
        if (AdvSimd.Arm64.IsSupported) return AdvSimd.Arm64.UnzipOdd(a, b);
        return Vector128.Create(a[1], a[3], b[1], b[3]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> InterleaveLower(Vector128<float> a, Vector128<float> b)
    {
        if (Sse.IsSupported) return Sse.UnpackLow(a, b);
        if (AdvSimd.Arm64.IsSupported) return AdvSimd.Arm64.ZipLow(a, b);
        return Vector128.Create(a[0], b[0], a[1], b[1]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> InterleaveUpper(Vector128<float> a, Vector128<float> b)
    {
        if (Sse.IsSupported) return Sse.UnpackHigh(a, b);
        if (AdvSimd.Arm64.IsSupported) return AdvSimd.Arm64.ZipHigh(a, b);
        return Vector128.Create(a[2], b[2], a[3], b[3]);
    }

    /// <summary>Four scalar loads: neither NEON nor SSE has a gather, and the tier must not assume AVX2's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Gather(float* source, int* indices) =>
        Vector128.Create(source[indices[0]], source[indices[1]], source[indices[2]], source[indices[3]]);
}
