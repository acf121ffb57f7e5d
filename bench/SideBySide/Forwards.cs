using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Models;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Kernels.SideBySide;

/// <summary>
/// One runtime's U-Net forward at one batch size, with its input (the same values in every runtime, timestep 500)
/// and, where the runtime lets us, its output allocated once: <see cref="Run"/> is exactly what is timed.
/// </summary>
internal interface IForward : IDisposable
{
    void Run();

    /// <summary>Runs once and returns the output, (B, 3, 32, 32) row-major, for the max abs difference.</summary>
    float[] RunOnce();
}

internal sealed class OursForward(UNet2D net, CpuBackend backend, float[] sample, int batch) : IForward
{
    private static readonly float[] s_timestep = [500f];
    private readonly DeviceTensor _x = backend.Upload(sample, batch, 3, 32, 32);
    private readonly DeviceTensor _y = backend.Allocate(batch, 3, 32, 32);

    public void Run() => net.Forward(_x, s_timestep, _y);

    public float[] RunOnce()
    {
        Run();
        var output = new float[_y.Length];
        backend.Download(_y, output);
        return output;
    }

    public void Dispose()
    {
        _x.Dispose();
        _y.Dispose();
    }
}

/// <summary>ONNX Runtime's CPU execution provider with every graph optimisation, intra-op threads = our threads.</summary>
internal sealed class OrtForward : IForward
{
    private readonly SessionOptions _options;
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();
    private readonly float[] _output;
    private readonly OrtValue[] _inputs, _outputs;
    private readonly string[] _inputNames = ["sample", "timestep"], _outputNames = ["out"];

    public OrtForward(string modelPath, int threads, float[] sample, int batch)
    {
        _options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
        };
        _session = new InferenceSession(modelPath, _options);
        _output = new float[sample.Length];
        _inputs =
        [
            OrtValue.CreateTensorValueFromMemory(sample, [batch, 3, 32, 32]),
            OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(500f, batch).ToArray(), [batch]),
        ];
        _outputs = [OrtValue.CreateTensorValueFromMemory(_output, [batch, 3, 32, 32])];
    }

    public void Run() => _session.Run(_run, _inputNames, _inputs, _outputNames, _outputs);

    public float[] RunOnce()
    {
        Run();
        return (float[])_output.Clone();
    }

    public void Dispose()
    {
        foreach (var value in _inputs.Concat(_outputs)) value.Dispose();
        _run.Dispose();
        _session.Dispose();
        _options.Dispose();
    }
}

/// <summary>libtorch through TorchSharp: the TorchScript module torch.jit.trace made of weights/reference_unet.py.</summary>
internal sealed class TorchForward(string modulePath, float[] sample, int batch) : IForward
{
    private readonly jit.ScriptModule<Tensor, Tensor, Tensor> _module = LoadEval(modulePath);
    private readonly Tensor _x = tensor(sample, [batch, 3, 32, 32]);
    private readonly Tensor _t = full([batch], 500f);

    public void Run()
    {
        using var _ = inference_mode();
        _module.forward(_x, _t).Dispose();
    }

    public float[] RunOnce()
    {
        using var _ = inference_mode();
        using var y = _module.forward(_x, _t);
        return y.data<float>().ToArray();
    }

    public void Dispose()
    {
        _module.Dispose();
        _x.Dispose();
        _t.Dispose();
    }

    private static jit.ScriptModule<Tensor, Tensor, Tensor> LoadEval(string path)
    {
        var module = jit.load<Tensor, Tensor, Tensor>(path);
        module.eval();
        return module;
    }
}

/// <summary>Raw little-endian float32 files: how the Python driver and this process hand tensors to each other.</summary>
internal static class Raw
{
    public static float[] Read(string path, int count)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length != 4 * count)
            throw new InvalidDataException($"{path}: {bytes.Length} bytes, expected {4 * count} ({count} float32 values)");
        var values = new float[count];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    public static void Write(string path, float[] values)
    {
        var bytes = new byte[4 * values.Length];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        File.WriteAllBytes(path, bytes);
    }
}
