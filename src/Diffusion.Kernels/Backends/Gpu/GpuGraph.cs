using System.Runtime.InteropServices;

namespace Diffusion.Kernels.Backends.Gpu;

public sealed partial class GpuBackend
{
    private bool _recording;

    /// <summary>
    /// Records the ops <paramref name="issue"/> enqueues (a U-Net forward and a sampler step) once, to be replayed
    /// with <see cref="GpuGraph.Replay"/>. On CUDA the recording is a CUDA graph captured on the backend's stream: one
    /// driver call per step instead of one per kernel. The timesteps and the sampler coefficients are not part of the
    /// recording: the kernels read them from device tensors that each replay fills first, so a whole sampling run
    /// replays one recording. On the emulated device the "graph" re-issues <paramref name="issue"/> on replay in the
    /// same recording mode, so the replay path (values taken from those tensors, not from the call) is tested there.
    /// <paramref name="issue"/> first runs once normally, so every kernel is compiled and the pool holds every block
    /// the recording needs: nothing may be allocated while capturing (<see cref="GraphCaptureException"/>).
    /// Tensors the graph reads or writes must be allocated before the capture and outlive the graph.
    /// </summary>
    public GpuGraph CaptureGraph(Action issue)
    {
        ArgumentNullException.ThrowIfNull(issue);
        ObjectDisposedException.ThrowIf(_disposed, this);
        issue();
        Synchronize();
        if (!_device.IsCuda) return new GpuGraph(this, issue, IntPtr.Zero, [], _timestepSlot);

        _device.MakeCurrent();
        IntPtr stream = _device.CudaStreamHandle;
        _pool.BeginCapture();
        _recording = true;
        IntPtr graph = IntPtr.Zero;
        bool captured = false;
        try
        {
            CudaGraphDriver.Check(CudaGraphDriver.cuStreamBeginCapture_v2(stream, CudaGraphDriver.CaptureModeRelaxed), "cuStreamBeginCapture_v2");
            try
            {
                issue();
            }
            catch
            {
                if (CudaGraphDriver.cuStreamEndCapture(stream, out IntPtr partial) == 0 && partial != IntPtr.Zero) CudaGraphDriver.cuGraphDestroy(partial);
                throw;
            }
            CudaGraphDriver.Check(CudaGraphDriver.cuStreamEndCapture(stream, out graph), "cuStreamEndCapture",
                "(an op issued during capture did something a graph cannot record)");
            CudaGraphDriver.Check(CudaGraphDriver.cuGraphInstantiateWithFlags(out IntPtr executable, graph, 0), "cuGraphInstantiateWithFlags");
            captured = true;
            _recording = false;
            return new GpuGraph(this, issue, executable, _pool.EndCapture(), _timestepSlot);
        }
        finally
        {
            _recording = false;
            if (!captured)
            {
                foreach (var (block, size) in _pool.EndCapture()) _pool.Return(block, size);
            }
            if (graph != IntPtr.Zero) CudaGraphDriver.cuGraphDestroy(graph);
        }
    }

    internal void ReplayGraph(GpuGraph graph, ReadOnlySpan<float> timesteps, in SamplerStepCoefficients coefficients)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // The recording reads the timestep tensor that existed when it was made; a call with another batch size since
        // then replaced it, and the recording would read freed memory.
        if (graph.TimestepSlot == null || !ReferenceEquals(graph.TimestepSlot, _timestepSlot))
            throw new BackendArgumentException("the graph's timestep tensor was replaced by a timestep embedding of another batch size since it was recorded; capture it again");
        if (timesteps.Length != graph.TimestepSlot.Length)
            throw new BackendArgumentException($"the graph was recorded for {graph.TimestepSlot.Length} timesteps, not {timesteps.Length}");
        CopyIn(graph.TimestepSlot, timesteps);
        CopyIn(CoefficientSlot(), Pack(coefficients));
        if (graph.Executable == IntPtr.Zero)
        {
            _recording = true;
            try
            {
                graph.Issue();
            }
            finally
            {
                _recording = false;
            }
            return;
        }
        _device.MakeCurrent();
        CudaGraphDriver.Check(CudaGraphDriver.cuGraphLaunch(graph.Executable, _device.CudaStreamHandle), "cuGraphLaunch");
    }

    internal void ReleaseGraph(GpuGraph graph)
    {
        if (_disposed) return;
        Synchronize();
        if (graph.Executable != IntPtr.Zero)
        {
            _device.MakeCurrent();
            CudaGraphDriver.cuGraphExecDestroy(graph.Executable);
        }
        foreach (var (block, size) in graph.Workspace) _pool.Return(block, size);
    }
}

/// <summary>
/// A recorded sampler step (see <see cref="GpuBackend.CaptureGraph"/>). Owns the device workspace the recording
/// uses; dispose it before the backend. Replays are asynchronous like any op.
/// </summary>
public sealed class GpuGraph : IDisposable
{
    private readonly GpuBackend _backend;
    private bool _disposed;

    internal GpuGraph(GpuBackend backend, Action issue, IntPtr executable,
        List<(ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense> Block, long Size)> workspace, GpuTensor? timestepSlot)
    {
        _backend = backend;
        Issue = issue;
        Executable = executable;
        Workspace = workspace;
        TimestepSlot = timestepSlot;
    }

    /// <summary>True when this is a CUDA graph; false on the emulated device, where a replay re-issues the ops.</summary>
    public bool IsCudaGraph => Executable != IntPtr.Zero;

    internal Action Issue { get; }

    internal IntPtr Executable { get; }

    /// <summary>The device tensor the recorded timestep embedding reads; null when the recording embeds no timestep.</summary>
    internal GpuTensor? TimestepSlot { get; }

    internal List<(ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense> Block, long Size)> Workspace { get; }

    /// <summary>Runs the recorded step with these timesteps and sampler coefficients; nothing is re-recorded.</summary>
    public void Replay(ReadOnlySpan<float> timesteps, in SamplerStepCoefficients coefficients)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _backend.ReplayGraph(this, timesteps, coefficients);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _backend.ReleaseGraph(this);
    }
}

/// <summary>The few CUDA driver calls ILGPU does not wrap: stream capture, graph launch, events, free memory (the driver resolves as "cuda").</summary>
internal static partial class CudaGraphDriver
{
    private const string Library = "cuda";
    internal const int CaptureModeRelaxed = 2;

    [LibraryImport(Library)] internal static partial int cuStreamBeginCapture_v2(IntPtr stream, int mode);
    [LibraryImport(Library)] internal static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);
    [LibraryImport(Library)] internal static partial int cuGraphInstantiateWithFlags(out IntPtr graphExec, IntPtr graph, ulong flags);
    [LibraryImport(Library)] internal static partial int cuGraphLaunch(IntPtr graphExec, IntPtr stream);
    [LibraryImport(Library)] internal static partial int cuGraphExecDestroy(IntPtr graphExec);
    [LibraryImport(Library)] internal static partial int cuGraphDestroy(IntPtr graph);
    [LibraryImport(Library)] internal static partial int cuMemGetInfo_v2(out nuint free, out nuint total);
    [LibraryImport(Library)] internal static partial int cuEventCreate(out IntPtr evt, uint flags);
    [LibraryImport(Library)] internal static partial int cuEventDestroy_v2(IntPtr evt);
    [LibraryImport(Library)] internal static partial int cuEventRecord(IntPtr evt, IntPtr stream);
    [LibraryImport(Library)] internal static partial int cuEventSynchronize(IntPtr evt);
    [LibraryImport(Library)] internal static partial int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    /// <summary>Free memory of the current context's device (the caller makes it current).</summary>
    internal static long FreeBytes()
    {
        Check(cuMemGetInfo_v2(out nuint free, out _), "cuMemGetInfo_v2");
        return (long)free;
    }

    /// <summary>Milliseconds between two events recorded on <paramref name="stream"/> around <paramref name="issue"/>.</summary>
    internal static double Time(IntPtr stream, Action issue)
    {
        Check(cuEventCreate(out IntPtr start, 0), "cuEventCreate");
        try
        {
            Check(cuEventCreate(out IntPtr end, 0), "cuEventCreate");
            try
            {
                Check(cuEventRecord(start, stream), "cuEventRecord");
                issue();
                Check(cuEventRecord(end, stream), "cuEventRecord");
                Check(cuEventSynchronize(end), "cuEventSynchronize", "(or a timed kernel failed)");
                Check(cuEventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
                return ms;
            }
            finally
            {
                cuEventDestroy_v2(end);
            }
        }
        finally
        {
            cuEventDestroy_v2(start);
        }
    }

    internal static void Check(int result, string call, string? context = null)
    {
        if (result != 0)
            throw new GpuDeviceException($"{call} failed with CUDA error {result}" + (context == null ? "" : " " + context));
    }
}
