namespace Diffusion.Kernels.Backends;

/// <summary>
/// One sampler step as a fused elementwise update. Every scheduler we support (DDPM, DDIM, DPM-Solver++(2M),
/// Euler ancestral) reduces to these per-step scalars, computed on the host in float64:
/// <code>
///   x0   = clamp(X0FromSample·x + X0FromModel·m, −ClipRange, ClipRange)
///   eps  = EpsFromSample·x + EpsFromModel·m
///   next = NextFromX0·x0 + NextFromEps·eps + NextFromSample·x + NextFromPrevX0·x0_prev + NextFromNoise·z
/// </code>
/// where x is the current sample, m the model output, z fresh noise and x0_prev the previous step's x0
/// (multistep solvers). ClipRange is +∞ when clipping is off.
/// </summary>
public readonly record struct SamplerStepCoefficients(
    float X0FromSample,
    float X0FromModel,
    float ClipRange,
    float EpsFromSample,
    float EpsFromModel,
    float NextFromX0,
    float NextFromEps,
    float NextFromSample,
    float NextFromPrevX0,
    float NextFromNoise);
