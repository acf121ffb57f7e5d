using Diffusion.Kernels.Models;

namespace Diffusion.Kernels.Sampling;

/// <summary>
/// The Gaussian noise of one generation, reproducible from a seed on any machine and any backend: it is drawn
/// on the host by <see cref="SyntheticWeights.Gaussian"/> (splitmix64 keyed by FNV-1a of a stream name, then
/// Box–Muller), one named stream per use:
/// <list type="bullet">
/// <item><c>"x_init"</c>: the initial sample x_T, the whole (B, C, H, W) tensor in row-major order,</item>
/// <item><c>"noise/{i}"</c>: the fresh noise z of step i (0-based), likewise.</item>
/// </list>
/// These are the names <c>weights/make_goldens.py</c> uses, so a seed reproduces the PyTorch reference trajectories
/// exactly. Streams are independent, so skipping a step's noise (DDIM at η = 0) changes no other value, and image b
/// of a batch always takes elements [b·CHW, (b+1)·CHW): the first image of a batch equals the single image
/// generated with the same seed.
/// </summary>
public sealed class NoiseSource(ulong seed)
{
    public ulong Seed { get; } = seed;

    public float[] Initial(int count) => SyntheticWeights.Gaussian("x_init", count, Seed);

    public float[] Step(int step, int count) => SyntheticWeights.Gaussian($"noise/{step}", count, Seed);
}
