namespace Diffusion.Kernels.Backends.Cpu.Simd;

/// <summary>
/// One ISA tier of the CPU kernels: the vector type <typeparamref name="TV"/> (Vector512, Vector256 or Vector128 of
/// float), the handful of operations the kernels use on it, and the register blocking that fits its register file.
/// Every kernel is written once, generic over a struct implementing this; the JIT compiles one specialised body per
/// tier, with these members inlined and the blocking constants folded, so a tier costs no dispatch inside a loop.
/// Members are static abstract so a kernel never holds an instance: <c>T.FusedMultiplyAdd(a, b, c)</c>.
/// </summary>
internal unsafe interface ISimd<TV> where TV : struct
{
    /// <summary>Floats per vector.</summary>
    static abstract int Count { get; }

    /// <summary>
    /// Rows of the Sgemm micro-kernel (A values broadcast per k step). Its tile is MR rows × two vectors, so MR·2
    /// accumulators, two B vectors and one broadcast must fit the vector registers without spilling.
    /// </summary>
    static abstract int MR { get; }

    /// <summary>Columns of the Sgemm micro-kernel tile: two vectors.</summary>
    static abstract int NR { get; }

    /// <summary>Vectors of outputs per output channel the few-channel conv keeps in registers (3 channels each).</summary>
    static abstract int FewChannelVectors { get; }

    static abstract TV Zero { get; }

    static abstract TV Load(float* source);

    static abstract void Store(TV value, float* destination);

    static abstract TV Broadcast(float value);

    static abstract TV Add(TV a, TV b);

    static abstract TV Subtract(TV a, TV b);

    static abstract TV Multiply(TV a, TV b);

    static abstract TV Divide(TV a, TV b);

    /// <summary>a·b + c, rounded once where the hardware has FMA; a multiply and an add where it has none.</summary>
    static abstract TV FusedMultiplyAdd(TV a, TV b, TV c);

    /// <summary>The larger of a and b; when either is NaN the result is b (x86 maxps) or NaN (Arm): put the value whose NaN must survive second.</summary>
    static abstract TV Max(TV a, TV b);

    /// <summary>The smaller of a and b, with <see cref="Max"/>'s NaN rule.</summary>
    static abstract TV Min(TV a, TV b);

    /// <summary>Round to nearest, ties to even.</summary>
    static abstract TV Round(TV value);

    /// <summary>
    /// p·2^n for integral n in [-150, 128], overflow to ∞ and underflow to subnormals or 0 by ordinary rounding, and x
    /// where x is NaN (p and n are then NaN too): the last step of <see cref="VectorExp"/>.
    /// </summary>
    static abstract TV ScaleByPowerOfTwo(TV p, TV n, TV x);

    static abstract float Sum(TV value);

    /// <summary>The even elements of a, then the even elements of b: [a0 a2 … b0 b2 …].</summary>
    static abstract TV Evens(TV a, TV b);

    /// <summary>The odd elements of a, then the odd elements of b: [a1 a3 … b1 b3 …].</summary>
    static abstract TV Odds(TV a, TV b);

    /// <summary>The lower halves of a and b interleaved: [a0 b0 a1 b1 …].</summary>
    static abstract TV InterleaveLower(TV a, TV b);

    /// <summary>The upper halves of a and b interleaved: [a(n/2) b(n/2) …].</summary>
    static abstract TV InterleaveUpper(TV a, TV b);

    /// <summary>Element l is source[indices[l]].</summary>
    static abstract TV Gather(float* source, int* indices);
}
