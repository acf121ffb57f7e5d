using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// The stand-in for the U-Net that weights/reference_schedulers.py (toy_model) defines for the sampler goldens:
/// s = t/1000, m = float32(s·x + (1 − s)·(tanh(x/2) + 0.1·sin(x·t/100))), evaluated in double.
/// </summary>
internal sealed class ToyDenoiser(IBackend backend, int channels, int height, int width) : IDenoiser
{
    public IBackend Backend { get; } = backend;

    public (int Channels, int Height, int Width) SampleShape { get; } = (channels, height, width);

    public List<float> SeenTimesteps { get; } = [];

    /// <summary>The batch sizes of the forwards, in call order.</summary>
    public List<int> SeenBatches { get; } = [];

    /// <summary>Its host copies of the sample and the output.</summary>
    public long ActivationBytes(int batch, int height, int width) => 2L * sizeof(float) * batch * SampleShape.Channels * height * width;

    public static float Evaluate(float x32, float t32)
    {
        double x = x32, t = t32, s = t / 1000.0;
        return (float)(s * x + (1.0 - s) * (Math.Tanh(0.5 * x) + 0.1 * Math.Sin(x * t / 100.0)));
    }

    public void Forward(DeviceTensor sample, ReadOnlySpan<float> timesteps, DeviceTensor output)
    {
        float t = timesteps[0];
        SeenTimesteps.Add(t);
        SeenBatches.Add(sample.N);
        var x = new float[sample.Length];
        Backend.Download(sample, x);
        var m = x.Select(v => Evaluate(v, t)).ToArray();
        using var uploaded = Backend.Upload(m, output.ShapeArray());
        Backend.Add(uploaded, uploaded, output, 0.5f);
    }
}
