using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// The register-tiled SGEMM micro-kernel every heavy CPU op reduces to: C[MR×NR] (+)= A[MR×k]·B[k×NR].
/// A is read as k columns of MR values (column kk at a + kk·aStride), B as k rows of NR values (row kk at
/// b + kk·bStride), C row r at c + r·ldc. The 8×32 tile lives in 16 of the 32 zmm registers; each step
/// broadcasts one A value per row against two B vectors, so the two FMA pipes, not memory, set the pace.
/// </summary>
internal static unsafe class Sgemm
{
    public const int MR = 8;
    public const int NR = 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernel(int k, float* a, nint aStride, float* b, nint bStride, float* c, nint ldc, bool accumulate)
    {
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (accumulate)
        {
            c00 = Vector512.Load(c + 0 * ldc); c01 = Vector512.Load(c + 0 * ldc + 16);
            c10 = Vector512.Load(c + 1 * ldc); c11 = Vector512.Load(c + 1 * ldc + 16);
            c20 = Vector512.Load(c + 2 * ldc); c21 = Vector512.Load(c + 2 * ldc + 16);
            c30 = Vector512.Load(c + 3 * ldc); c31 = Vector512.Load(c + 3 * ldc + 16);
            c40 = Vector512.Load(c + 4 * ldc); c41 = Vector512.Load(c + 4 * ldc + 16);
            c50 = Vector512.Load(c + 5 * ldc); c51 = Vector512.Load(c + 5 * ldc + 16);
            c60 = Vector512.Load(c + 6 * ldc); c61 = Vector512.Load(c + 6 * ldc + 16);
            c70 = Vector512.Load(c + 7 * ldc); c71 = Vector512.Load(c + 7 * ldc + 16);
        }
        else
        {
            c00 = c01 = Vector512<float>.Zero;
            c10 = c11 = Vector512<float>.Zero;
            c20 = c21 = Vector512<float>.Zero;
            c30 = c31 = Vector512<float>.Zero;
            c40 = c41 = Vector512<float>.Zero;
            c50 = c51 = Vector512<float>.Zero;
            c60 = c61 = Vector512<float>.Zero;
            c70 = c71 = Vector512<float>.Zero;
        }
        for (int kk = 0; kk < k; kk++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            Vector512<float> ar;
            ar = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(ar, b0, c00); c01 = Vector512.FusedMultiplyAdd(ar, b1, c01);
            ar = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(ar, b0, c10); c11 = Vector512.FusedMultiplyAdd(ar, b1, c11);
            ar = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(ar, b0, c20); c21 = Vector512.FusedMultiplyAdd(ar, b1, c21);
            ar = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(ar, b0, c30); c31 = Vector512.FusedMultiplyAdd(ar, b1, c31);
            ar = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(ar, b0, c40); c41 = Vector512.FusedMultiplyAdd(ar, b1, c41);
            ar = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(ar, b0, c50); c51 = Vector512.FusedMultiplyAdd(ar, b1, c51);
            ar = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(ar, b0, c60); c61 = Vector512.FusedMultiplyAdd(ar, b1, c61);
            ar = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(ar, b0, c70); c71 = Vector512.FusedMultiplyAdd(ar, b1, c71);
            a += aStride;
            b += bStride;
        }
        c00.Store(c + 0 * ldc); c01.Store(c + 0 * ldc + 16);
        c10.Store(c + 1 * ldc); c11.Store(c + 1 * ldc + 16);
        c20.Store(c + 2 * ldc); c21.Store(c + 2 * ldc + 16);
        c30.Store(c + 3 * ldc); c31.Store(c + 3 * ldc + 16);
        c40.Store(c + 4 * ldc); c41.Store(c + 4 * ldc + 16);
        c50.Store(c + 5 * ldc); c51.Store(c + 5 * ldc + 16);
        c60.Store(c + 6 * ldc); c61.Store(c + 6 * ldc + 16);
        c70.Store(c + 7 * ldc); c71.Store(c + 7 * ldc + 16);
    }

    /// <summary>
    /// The narrow variant for outputs only 16 columns wide (a 4×4 image at batch 1), where the wide kernel
    /// would spend half its FMAs on padding: 2·MR rows (two A panels) × 16 columns, still 16 accumulators.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MicroKernelNarrow(int k, float* a0, float* a1, nint aStride, float* b, nint bStride, float* c, nint ldc, bool accumulate)
    {
        Vector512<float> c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15;
        if (accumulate)
        {
            c0 = Vector512.Load(c + 0 * ldc);
            c1 = Vector512.Load(c + 1 * ldc);
            c2 = Vector512.Load(c + 2 * ldc);
            c3 = Vector512.Load(c + 3 * ldc);
            c4 = Vector512.Load(c + 4 * ldc);
            c5 = Vector512.Load(c + 5 * ldc);
            c6 = Vector512.Load(c + 6 * ldc);
            c7 = Vector512.Load(c + 7 * ldc);
            c8 = Vector512.Load(c + 8 * ldc);
            c9 = Vector512.Load(c + 9 * ldc);
            c10 = Vector512.Load(c + 10 * ldc);
            c11 = Vector512.Load(c + 11 * ldc);
            c12 = Vector512.Load(c + 12 * ldc);
            c13 = Vector512.Load(c + 13 * ldc);
            c14 = Vector512.Load(c + 14 * ldc);
            c15 = Vector512.Load(c + 15 * ldc);
        }
        else
        {
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = c12 = c13 = c14 = c15 = Vector512<float>.Zero;
        }
        for (int kk = 0; kk < k; kk++)
        {
            var b0 = Vector512.Load(b);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[0]), b0, c0);
            c1 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[1]), b0, c1);
            c2 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[2]), b0, c2);
            c3 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[3]), b0, c3);
            c4 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[4]), b0, c4);
            c5 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[5]), b0, c5);
            c6 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[6]), b0, c6);
            c7 = Vector512.FusedMultiplyAdd(Vector512.Create(a0[7]), b0, c7);
            c8 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[0]), b0, c8);
            c9 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[1]), b0, c9);
            c10 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[2]), b0, c10);
            c11 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[3]), b0, c11);
            c12 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[4]), b0, c12);
            c13 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[5]), b0, c13);
            c14 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[6]), b0, c14);
            c15 = Vector512.FusedMultiplyAdd(Vector512.Create(a1[7]), b0, c15);
            a0 += aStride;
            a1 += aStride;
            b += bStride;
        }
        c0.Store(c + 0 * ldc);
        c1.Store(c + 1 * ldc);
        c2.Store(c + 2 * ldc);
        c3.Store(c + 3 * ldc);
        c4.Store(c + 4 * ldc);
        c5.Store(c + 5 * ldc);
        c6.Store(c + 6 * ldc);
        c7.Store(c + 7 * ldc);
        c8.Store(c + 8 * ldc);
        c9.Store(c + 9 * ldc);
        c10.Store(c + 10 * ldc);
        c11.Store(c + 11 * ldc);
        c12.Store(c + 12 * ldc);
        c13.Store(c + 13 * ldc);
        c14.Store(c + 14 * ldc);
        c15.Store(c + 15 * ldc);
    }
}
