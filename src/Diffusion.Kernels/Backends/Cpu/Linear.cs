using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Diffusion.Kernels.Backends.Cpu.Simd;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Linear: y[r, o] = b[o] + Σ_i W[o, i]·act(x[r, i]). In the U-Net it only maps the time embedding (a handful
/// of rows, ≤ 512 features), so it is a row of dot products over the PyTorch (out, in) layout, split by output.
/// </summary>
public sealed partial class CpuBackend
{
    private readonly Workspace _linearInput = new();

    public LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        OpContract.PrepareLinear(inFeatures, outFeatures, weight.Length, bias.Length);
        return new CpuLinearWeights(inFeatures, outFeatures, weight, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false)
    {
        const string Op = "Linear";
        var xt = Mine(x, nameof(x));
        var yt = Mine(y, nameof(y));
        if (weights is not CpuLinearWeights w)
            throw new BackendArgumentException($"{Op}: weights were not prepared by a CPU backend");
        OpContract.Linear(x, w, y);

        int rows = x.Shape[0], inF = w.InFeatures, outF = w.OutFeatures;
        float* input = xt.Pointer;
        if (siluInput)
        {
            input = _linearInput.Floats(x.Length);
            for (long i = 0; i < x.Length; i++) input[i] = SiLUValue(xt.Pointer[i]);
        }
        delegate*<float*, float*, int, float> dot = Tier switch
        {
            CpuTier.Avx512 => &Dot<Simd512, Vector512<float>>,
            CpuTier.Avx2 => &Dot<Simd256, Vector256<float>>,
            _ => &Dot<Simd128, Vector128<float>>,
        };
        const int OutputsPerTask = 64;
        var job = (X: (nint)input, Y: (nint)yt.Pointer);
        For((outF + OutputsPerTask - 1) / OutputsPerTask, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (task) =>
        {
            int o1 = Math.Min(outF, (task + 1) * OutputsPerTask);
            for (int o = task * OutputsPerTask; o < o1; o++)
            {
                float* wRow = w.Pointer + (long)o * inF;
                for (int r = 0; r < rows; r++)
                    ((float*)job.Y)[(long)r * outF + o] = w.Bias[o] + dot(wRow, (float*)job.X + (long)r * inF, inF);
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Dot<T, TV>(float* a, float* b, int length) where T : struct, ISimd<TV> where TV : struct
    {
        var acc = T.Zero;
        int i = 0;
        for (; i <= length - T.Count; i += T.Count)
            acc = T.FusedMultiplyAdd(T.Load(a + i), T.Load(b + i), acc);
        float sum = T.Sum(acc);
        for (; i < length; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
    }
}

/// <summary>Linear weights kept in PyTorch's (out, in) layout: each output is one contiguous dot product.</summary>
internal sealed unsafe class CpuLinearWeights : LinearWeights
{
    private readonly float[] _weight;

    public CpuLinearWeights(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
        : base(inFeatures, outFeatures)
    {
        _weight = GC.AllocateUninitializedArray<float>(weight.Length, pinned: true);
        weight.CopyTo(_weight);
        Bias = bias.ToArray();
    }

    public float[] Bias { get; }

    public float* Pointer => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_weight));

    protected override void Dispose(bool disposing) { }
}
