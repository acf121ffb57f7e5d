using Diffusion.Kernels.Backends.Cuda.Interop;
using static Diffusion.Kernels.Backends.Cuda.CudaErrors;

namespace Diffusion.Kernels.Backends.Cuda;

public sealed partial class CudaBackend
{
    private CudaGraph? _capture;

    /// <summary>
    /// Records the ops <paramref name="issue"/> enqueues as one CUDA graph, to be replayed with
    /// <see cref="CudaGraph.Launch"/>: one driver call instead of one per kernel, and no gaps between kernels
    /// while the host catches up — what small batches are limited by.
    /// <para>
    /// Unless <paramref name="warmUp"/> is false, <paramref name="issue"/> first runs once normally, so kernels are
    /// compiled and loaded and the memory pool holds every block it will need: nothing may be allocated from the
    /// driver while capturing (<see cref="GraphCaptureException"/> otherwise). Tensors the graph reads or writes
    /// must be allocated before the capture and outlive the graph; the intermediate tensors <paramref name="issue"/>
    /// allocates and frees become the graph's private workspace. Host values uploaded during capture (the U-Net's
    /// timesteps) are copied again from pinned memory on each replay, so a replay repeats exactly the captured
    /// step; <see cref="CudaGraph.Update"/> re-records it with new values.
    /// </para>
    /// </summary>
    public CudaGraph CaptureGraph(Action issue, bool warmUp = true)
    {
        ArgumentNullException.ThrowIfNull(issue);
        Enter();
        if (warmUp)
        {
            issue();
            _device.Synchronize("warming up before graph capture");
        }
        var graph = new CudaGraph(this);
        try
        {
            graph.Update(issue);
            return graph;
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }

    /// <summary>Records <paramref name="issue"/> on the stream into a new CUgraph (the caller destroys it).</summary>
    internal IntPtr Record(CudaGraph graph, Action issue, out List<(ulong Pointer, long Size)> workspace)
    {
        Enter();
        if (_capture != null) throw new InvalidOperationException("a graph capture is already in progress on this backend");
        _pool.BeginCapture();
        _capture = graph;
        IntPtr recorded = IntPtr.Zero;
        bool recordedAll = false;
        try
        {
            Check(CudaDriver.cuStreamBeginCapture_v2(_device.Stream, StreamCaptureMode.Relaxed), "cuStreamBeginCapture_v2");
            try
            {
                issue();
            }
            catch
            {
                // Leave the stream out of capture mode whatever happened; the partial graph is thrown away.
                if (CudaDriver.cuStreamEndCapture(_device.Stream, out IntPtr partial) == 0 && partial != IntPtr.Zero)
                    CudaDriver.cuGraphDestroy(partial);
                throw;
            }
            Check(CudaDriver.cuStreamEndCapture(_device.Stream, out recorded), "cuStreamEndCapture",
                "(an op issued during capture did something a graph cannot record)");
            recordedAll = true;
            return recorded;
        }
        finally
        {
            _capture = null;
            workspace = _pool.EndCapture();
            if (!recordedAll)
            {
                foreach (var (pointer, size) in workspace) _pool.Return(pointer, size);
                workspace = [];
            }
        }
    }

    internal void LaunchGraph(IntPtr executable)
    {
        Enter();
        Check(CudaDriver.cuGraphLaunch(executable, _device.Stream), "cuGraphLaunch");
    }

    internal void SynchronizeForGraph(string context)
    {
        Enter();
        _device.Synchronize(context);
    }

    internal void ReturnToPool(ulong pointer, long size) => _pool.Return(pointer, size);
}

/// <summary>
/// A captured sequence of ops (see <see cref="CudaBackend.CaptureGraph"/>), instantiated and ready to launch on the
/// backend's stream. Owns the device workspace and pinned staging memory the recording refers to; dispose it
/// before the backend. Launches are asynchronous like any op; <see cref="IBackend.Synchronize"/> waits for them.
/// </summary>
public sealed unsafe class CudaGraph : IDisposable
{
    private readonly CudaBackend _backend;
    private IntPtr _executable;
    private List<(ulong Pointer, long Size)> _workspace = [];
    private List<IntPtr> _staging = [];
    private List<IntPtr> _stagingBeingRecorded = [];
    private bool _disposed;

    internal CudaGraph(CudaBackend backend) => _backend = backend;

    /// <summary>How many times the ops have been recorded: one for the capture plus one per <see cref="Update"/>.</summary>
    public int Recordings { get; private set; }

    /// <summary>True when the last <see cref="Update"/> patched the executable graph in place rather than rebuilding it.</summary>
    public bool LastUpdateWasInPlace { get; private set; }

    /// <summary>Replays the recorded ops on the backend's stream.</summary>
    public void Launch()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_executable == IntPtr.Zero)
            throw new InvalidOperationException("the last recording of this graph failed, so there is nothing valid to launch; update it or capture a new one");
        _backend.LaunchGraph(_executable);
    }

    /// <summary>
    /// Re-records <paramref name="issue"/> (e.g. the next sampler step, with its new timestep and coefficients) and
    /// moves the executable graph to it. When only parameters changed, cuGraphExecUpdate patches the graph in place,
    /// which is much cheaper than instantiating it again; otherwise (or on drivers before CUDA 12) it is rebuilt.
    /// </summary>
    public void Update(Action issue)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(issue);
        // Earlier launches may still read the workspace and staging memory that the new recording replaces.
        _backend.SynchronizeForGraph("waiting for earlier graph launches before re-recording");
        ReleaseWorkspace();
        _stagingBeingRecorded = [];
        IntPtr recorded = IntPtr.Zero;
        try
        {
            recorded = _backend.Record(this, issue, out var workspace);
            _workspace = workspace;
            LastUpdateWasInPlace = _executable != IntPtr.Zero && TryUpdateInPlace(recorded);
            if (!LastUpdateWasInPlace)
            {
                if (_executable != IntPtr.Zero) CudaDriver.cuGraphExecDestroy(_executable);
                _executable = IntPtr.Zero;
                Check(CudaDriver.cuGraphInstantiateWithFlags(out _executable, recorded, 0), "cuGraphInstantiateWithFlags");
            }
            FreeStaging(_staging);
            _staging = _stagingBeingRecorded;
            Recordings++;
        }
        catch
        {
            // The old executable graph refers to workspace already handed back, so it must never run again.
            if (_executable != IntPtr.Zero) CudaDriver.cuGraphExecDestroy(_executable);
            _executable = IntPtr.Zero;
            ReleaseWorkspace();
            FreeStaging(_stagingBeingRecorded);
            throw;
        }
        finally
        {
            _stagingBeingRecorded = [];
            // The executable graph holds its own copy of the recording.
            if (recorded != IntPtr.Zero) CudaDriver.cuGraphDestroy(recorded);
        }
    }

    /// <summary>Copies host values into pinned memory owned by this graph; the recorded copy reads them from there.</summary>
    internal IntPtr Stage(ReadOnlySpan<float> values)
    {
        Check(CudaDriver.cuMemAllocHost_v2(out IntPtr pinned, (nuint)values.Length * sizeof(float)), "cuMemAllocHost_v2",
            "pinned staging memory for a graph upload");
        _stagingBeingRecorded.Add(pinned);
        values.CopyTo(new Span<float>((void*)pinned, values.Length));
        return pinned;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _backend.SynchronizeForGraph("waiting for graph launches before freeing the graph");
        if (_executable != IntPtr.Zero) CudaDriver.cuGraphExecDestroy(_executable);
        _executable = IntPtr.Zero;
        ReleaseWorkspace();
        FreeStaging(_staging);
        _staging = [];
    }

    private bool TryUpdateInPlace(IntPtr recorded)
    {
        try
        {
            return CudaDriver.cuGraphExecUpdate_v2(_executable, recorded, out _) == 0;
        }
        catch (EntryPointNotFoundException)
        {
            return false; // CUDA 11 driver: no _v2 entry point; rebuilding is always correct
        }
    }

    private void ReleaseWorkspace()
    {
        foreach (var (pointer, size) in _workspace) _backend.ReturnToPool(pointer, size);
        _workspace = [];
    }

    private static void FreeStaging(List<IntPtr> buffers)
    {
        foreach (IntPtr pinned in buffers) CudaDriver.cuMemFreeHost(pinned);
        buffers.Clear();
    }
}
