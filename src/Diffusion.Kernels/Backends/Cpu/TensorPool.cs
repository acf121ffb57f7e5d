namespace Diffusion.Kernels.Backends.Cpu;

/// <summary>
/// Pinned float arrays kept by exact length. A U-Net forward asks for the same few shapes every step, so after
/// the first step every Allocate is a pop and every Dispose a push: no garbage, no page faults.
/// </summary>
internal sealed class TensorPool
{
    private readonly Dictionary<int, Stack<float[]>> _free = [];
    private readonly Lock _lock = new();

    public float[] Rent(int length)
    {
        lock (_lock)
        {
            if (_free.TryGetValue(length, out var stack) && stack.TryPop(out var array))
                return array;
        }
        return GC.AllocateUninitializedArray<float>(length, pinned: true);
    }

    public void Return(float[] array)
    {
        lock (_lock)
        {
            if (!_free.TryGetValue(array.Length, out var stack))
                _free[array.Length] = stack = new Stack<float[]>();
            stack.Push(array);
        }
    }

    public void Clear()
    {
        lock (_lock) _free.Clear();
    }
}
