using System.Runtime.CompilerServices;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The register-tiled SGEMM micro-kernel every heavy CPU op reduces to: C[MR×NR] (+)= A[MR×k]·B[k×NR].
/// A is read as k columns of MR values (column kk at a + kk·aStride), B as k rows of NR values (row kk at
/// b + kk·bStride), C row r at c + r·ldc. The tile is MR rows × two vectors (<see cref="ISimd{TV}.MR"/>: 8×32 in
/// 16 of AVX-512's 32 zmm registers, 6×16 in 12 of AVX2's 16 ymm, 8×8 or 6×8 on 128-bit); each step broadcasts one
/// A value per row against two B vectors, so the FMA pipes, not memory, set the pace. Written for up to 8 rows: the
/// rows past the tier's MR are constant-false branches the JIT drops, with their accumulators.
/// </summary>
internal static unsafe class Sgemm
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernel<T, TV>(int k, float* a, nint aStride, float* b, nint bStride, float* c, nint ldc, bool accumulate)
        where T : struct, ISimd<TV> where TV : struct
    {
        int n = T.Count;
        bool eight = T.MR == 8;
        TV z = T.Zero;
        TV c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        TV c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        if (accumulate)
        {
            c00 = T.Load(c + 0 * ldc); c01 = T.Load(c + 0 * ldc + n);
            c10 = T.Load(c + 1 * ldc); c11 = T.Load(c + 1 * ldc + n);
            c20 = T.Load(c + 2 * ldc); c21 = T.Load(c + 2 * ldc + n);
            c30 = T.Load(c + 3 * ldc); c31 = T.Load(c + 3 * ldc + n);
            c40 = T.Load(c + 4 * ldc); c41 = T.Load(c + 4 * ldc + n);
            c50 = T.Load(c + 5 * ldc); c51 = T.Load(c + 5 * ldc + n);
            if (eight)
            {
                c60 = T.Load(c + 6 * ldc); c61 = T.Load(c + 6 * ldc + n);
                c70 = T.Load(c + 7 * ldc); c71 = T.Load(c + 7 * ldc + n);
            }
        }
        for (int kk = 0; kk < k; kk++)
        {
            var b0 = T.Load(b);
            var b1 = T.Load(b + n);
            TV ar;
            ar = T.Broadcast(a[0]); c00 = T.FusedMultiplyAdd(ar, b0, c00); c01 = T.FusedMultiplyAdd(ar, b1, c01);
            ar = T.Broadcast(a[1]); c10 = T.FusedMultiplyAdd(ar, b0, c10); c11 = T.FusedMultiplyAdd(ar, b1, c11);
            ar = T.Broadcast(a[2]); c20 = T.FusedMultiplyAdd(ar, b0, c20); c21 = T.FusedMultiplyAdd(ar, b1, c21);
            ar = T.Broadcast(a[3]); c30 = T.FusedMultiplyAdd(ar, b0, c30); c31 = T.FusedMultiplyAdd(ar, b1, c31);
            ar = T.Broadcast(a[4]); c40 = T.FusedMultiplyAdd(ar, b0, c40); c41 = T.FusedMultiplyAdd(ar, b1, c41);
            ar = T.Broadcast(a[5]); c50 = T.FusedMultiplyAdd(ar, b0, c50); c51 = T.FusedMultiplyAdd(ar, b1, c51);
            if (eight)
            {
                ar = T.Broadcast(a[6]); c60 = T.FusedMultiplyAdd(ar, b0, c60); c61 = T.FusedMultiplyAdd(ar, b1, c61);
                ar = T.Broadcast(a[7]); c70 = T.FusedMultiplyAdd(ar, b0, c70); c71 = T.FusedMultiplyAdd(ar, b1, c71);
            }
            a += aStride;
            b += bStride;
        }
        T.Store(c00, c + 0 * ldc); T.Store(c01, c + 0 * ldc + n);
        T.Store(c10, c + 1 * ldc); T.Store(c11, c + 1 * ldc + n);
        T.Store(c20, c + 2 * ldc); T.Store(c21, c + 2 * ldc + n);
        T.Store(c30, c + 3 * ldc); T.Store(c31, c + 3 * ldc + n);
        T.Store(c40, c + 4 * ldc); T.Store(c41, c + 4 * ldc + n);
        T.Store(c50, c + 5 * ldc); T.Store(c51, c + 5 * ldc + n);
        if (eight)
        {
            T.Store(c60, c + 6 * ldc); T.Store(c61, c + 6 * ldc + n);
            T.Store(c70, c + 7 * ldc); T.Store(c71, c + 7 * ldc + n);
        }
    }

    /// <summary>
    /// The indirect variant, for convolutions taken pixel-major: A is not packed but read where it lies, row r of
    /// column kk at x[rows[r] + taps[kk]] (a pixel's window origin plus a tap's offset in the padded input), so a
    /// conv whose patch matrix would cost as much to copy as to multiply (few pixels, or stride 2) copies nothing.
    /// Each step adds one load (the tap's offset) to the packed kernel's; the row offsets stay in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernelIndirect<T, TV>(int k, float* x, int* rows, int* taps, float* b, nint bStride, float* c, nint ldc, bool accumulate)
        where T : struct, ISimd<TV> where TV : struct
    {
        int n = T.Count;
        bool eight = T.MR == 8;
        nint r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3], r4 = rows[4], r5 = rows[5];
        nint r6 = eight ? rows[6] : 0, r7 = eight ? rows[7] : 0;
        TV z = T.Zero;
        TV c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        TV c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        if (accumulate)
        {
            c00 = T.Load(c + 0 * ldc); c01 = T.Load(c + 0 * ldc + n);
            c10 = T.Load(c + 1 * ldc); c11 = T.Load(c + 1 * ldc + n);
            c20 = T.Load(c + 2 * ldc); c21 = T.Load(c + 2 * ldc + n);
            c30 = T.Load(c + 3 * ldc); c31 = T.Load(c + 3 * ldc + n);
            c40 = T.Load(c + 4 * ldc); c41 = T.Load(c + 4 * ldc + n);
            c50 = T.Load(c + 5 * ldc); c51 = T.Load(c + 5 * ldc + n);
            if (eight)
            {
                c60 = T.Load(c + 6 * ldc); c61 = T.Load(c + 6 * ldc + n);
                c70 = T.Load(c + 7 * ldc); c71 = T.Load(c + 7 * ldc + n);
            }
        }
        for (int kk = 0; kk < k; kk++)
        {
            float* a = x + taps[kk];
            var b0 = T.Load(b);
            var b1 = T.Load(b + n);
            TV ar;
            ar = T.Broadcast(a[r0]); c00 = T.FusedMultiplyAdd(ar, b0, c00); c01 = T.FusedMultiplyAdd(ar, b1, c01);
            ar = T.Broadcast(a[r1]); c10 = T.FusedMultiplyAdd(ar, b0, c10); c11 = T.FusedMultiplyAdd(ar, b1, c11);
            ar = T.Broadcast(a[r2]); c20 = T.FusedMultiplyAdd(ar, b0, c20); c21 = T.FusedMultiplyAdd(ar, b1, c21);
            ar = T.Broadcast(a[r3]); c30 = T.FusedMultiplyAdd(ar, b0, c30); c31 = T.FusedMultiplyAdd(ar, b1, c31);
            ar = T.Broadcast(a[r4]); c40 = T.FusedMultiplyAdd(ar, b0, c40); c41 = T.FusedMultiplyAdd(ar, b1, c41);
            ar = T.Broadcast(a[r5]); c50 = T.FusedMultiplyAdd(ar, b0, c50); c51 = T.FusedMultiplyAdd(ar, b1, c51);
            if (eight)
            {
                ar = T.Broadcast(a[r6]); c60 = T.FusedMultiplyAdd(ar, b0, c60); c61 = T.FusedMultiplyAdd(ar, b1, c61);
                ar = T.Broadcast(a[r7]); c70 = T.FusedMultiplyAdd(ar, b0, c70); c71 = T.FusedMultiplyAdd(ar, b1, c71);
            }
            b += bStride;
        }
        T.Store(c00, c + 0 * ldc); T.Store(c01, c + 0 * ldc + n);
        T.Store(c10, c + 1 * ldc); T.Store(c11, c + 1 * ldc + n);
        T.Store(c20, c + 2 * ldc); T.Store(c21, c + 2 * ldc + n);
        T.Store(c30, c + 3 * ldc); T.Store(c31, c + 3 * ldc + n);
        T.Store(c40, c + 4 * ldc); T.Store(c41, c + 4 * ldc + n);
        T.Store(c50, c + 5 * ldc); T.Store(c51, c + 5 * ldc + n);
        if (eight)
        {
            T.Store(c60, c + 6 * ldc); T.Store(c61, c + 6 * ldc + n);
            T.Store(c70, c + 7 * ldc); T.Store(c71, c + 7 * ldc + n);
        }
    }

    /// <summary>
    /// The narrow variant for outputs only one vector wide (a 4×4 image at batch 1 on AVX-512), where the wide kernel
    /// would spend half its FMAs on padding: 2·MR rows (two A panels) × one vector, the same accumulator count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernelNarrow<T, TV>(int k, float* a0, float* a1, nint aStride, float* b, nint bStride, float* c, nint ldc, bool accumulate)
        where T : struct, ISimd<TV> where TV : struct
    {
        int mr = T.MR;
        bool eight = mr == 8;
        TV z = T.Zero;
        TV p0 = z, p1 = z, p2 = z, p3 = z, p4 = z, p5 = z, p6 = z, p7 = z;
        TV q0 = z, q1 = z, q2 = z, q3 = z, q4 = z, q5 = z, q6 = z, q7 = z;
        if (accumulate)
        {
            p0 = T.Load(c + 0 * ldc); q0 = T.Load(c + (mr + 0) * ldc);
            p1 = T.Load(c + 1 * ldc); q1 = T.Load(c + (mr + 1) * ldc);
            p2 = T.Load(c + 2 * ldc); q2 = T.Load(c + (mr + 2) * ldc);
            p3 = T.Load(c + 3 * ldc); q3 = T.Load(c + (mr + 3) * ldc);
            p4 = T.Load(c + 4 * ldc); q4 = T.Load(c + (mr + 4) * ldc);
            p5 = T.Load(c + 5 * ldc); q5 = T.Load(c + (mr + 5) * ldc);
            if (eight)
            {
                p6 = T.Load(c + 6 * ldc); q6 = T.Load(c + (mr + 6) * ldc);
                p7 = T.Load(c + 7 * ldc); q7 = T.Load(c + (mr + 7) * ldc);
            }
        }
        for (int kk = 0; kk < k; kk++)
        {
            var b0 = T.Load(b);
            p0 = T.FusedMultiplyAdd(T.Broadcast(a0[0]), b0, p0); q0 = T.FusedMultiplyAdd(T.Broadcast(a1[0]), b0, q0);
            p1 = T.FusedMultiplyAdd(T.Broadcast(a0[1]), b0, p1); q1 = T.FusedMultiplyAdd(T.Broadcast(a1[1]), b0, q1);
            p2 = T.FusedMultiplyAdd(T.Broadcast(a0[2]), b0, p2); q2 = T.FusedMultiplyAdd(T.Broadcast(a1[2]), b0, q2);
            p3 = T.FusedMultiplyAdd(T.Broadcast(a0[3]), b0, p3); q3 = T.FusedMultiplyAdd(T.Broadcast(a1[3]), b0, q3);
            p4 = T.FusedMultiplyAdd(T.Broadcast(a0[4]), b0, p4); q4 = T.FusedMultiplyAdd(T.Broadcast(a1[4]), b0, q4);
            p5 = T.FusedMultiplyAdd(T.Broadcast(a0[5]), b0, p5); q5 = T.FusedMultiplyAdd(T.Broadcast(a1[5]), b0, q5);
            if (eight)
            {
                p6 = T.FusedMultiplyAdd(T.Broadcast(a0[6]), b0, p6); q6 = T.FusedMultiplyAdd(T.Broadcast(a1[6]), b0, q6);
                p7 = T.FusedMultiplyAdd(T.Broadcast(a0[7]), b0, p7); q7 = T.FusedMultiplyAdd(T.Broadcast(a1[7]), b0, q7);
            }
            a0 += aStride;
            a1 += aStride;
            b += bStride;
        }
        T.Store(p0, c + 0 * ldc); T.Store(q0, c + (mr + 0) * ldc);
        T.Store(p1, c + 1 * ldc); T.Store(q1, c + (mr + 1) * ldc);
        T.Store(p2, c + 2 * ldc); T.Store(q2, c + (mr + 2) * ldc);
        T.Store(p3, c + 3 * ldc); T.Store(q3, c + (mr + 3) * ldc);
        T.Store(p4, c + 4 * ldc); T.Store(q4, c + (mr + 4) * ldc);
        T.Store(p5, c + 5 * ldc); T.Store(q5, c + (mr + 5) * ldc);
        if (eight)
        {
            T.Store(p6, c + 6 * ldc); T.Store(q6, c + (mr + 6) * ldc);
            T.Store(p7, c + 7 * ldc); T.Store(q7, c + (mr + 7) * ldc);
        }
    }
}
