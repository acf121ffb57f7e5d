using Diffusion.Kernels.Backends;

namespace Diffusion.Kernels.Sampling;

/// <summary>
/// The network a sampler calls at each step: a diffusers-style U-Net, or anything with its contract.
/// Its output has the sample's shape and is what the scheduler config's prediction_type names (ε, x0 or v).
/// </summary>
public interface IDenoiser
{
    /// <summary>The backend the model's weights live on; samples and outputs are allocated there.</summary>
    IBackend Backend { get; }

    /// <summary>Shape of one sample the model was trained on: (channels, height, width).</summary>
    (int Channels, int Height, int Width) SampleShape { get; }

    /// <summary>output (B, C, H, W) = model(sample (B, C, H, W), one timestep per batch item or one for all).</summary>
    void Forward(DeviceTensor sample, ReadOnlySpan<float> timesteps, DeviceTensor output);

    /// <summary>
    /// An upper bound on the working memory one <see cref="Forward"/> of a (batch, C, height, width) sample
    /// allocates, in bytes, beyond the sample and output; linear in batch. The pipeline sizes its chunks with it.
    /// </summary>
    long ActivationBytes(int batch, int height, int width);
}
