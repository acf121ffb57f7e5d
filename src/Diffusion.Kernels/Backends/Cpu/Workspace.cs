using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Scratch memory that grows to the largest request and is then reused, so kernels allocate nothing per call.
/// One instance per purpose; per-thread instances live in [ThreadStatic] fields of the kernel that uses them.
/// </summary>
internal sealed unsafe class Workspace
{
    private float[] _floats = [];
    private int[] _ints = [];

    public float* Floats(long count)
    {
        if (_floats.Length < count)
            _floats = GC.AllocateUninitializedArray<float>(Grow(count), pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_floats));
    }

    public int* Ints(long count)
    {
        if (_ints.Length < count)
            _ints = GC.AllocateUninitializedArray<int>(Grow(count), pinned: true);
        return (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_ints));
    }

    private static int Grow(long count) => checked((int)Math.Max(count, 1024));
}
