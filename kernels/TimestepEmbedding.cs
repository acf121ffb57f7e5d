// TimestepEmbedding — the GPU twin of CpuBackend.TimestepEmbedding (Backends/Cpu/Elementwise.cs).
//
// Sinusoidal features of each timestep: with half = dim/2 and frequencies f_k = exp(−ln(10000)·k/(half − shift)),
//   y[n, k] = sin(t_n·f_k), y[n, half + k] = cos(t_n·f_k)   (swapped when FlipSinToCos is set)
// and an odd dim leaves its last column 0. The timesteps are read from a device tensor, so a captured CUDA graph
// replays with new timesteps without being re-recorded.
// The frequencies do not depend on t: the host computes them once per shape exactly as the CPU backend does
// (float32, diffusers' order) and the kernel only multiplies. sin and cos are evaluated here in float64 with an
// explicit range reduction and Taylor polynomials rather than through MathF: on PTX, MathF.Sin and MathF.Cos become
// sin.approx / cos.approx, whose error grows with the argument (t·f reaches 1000), and the U-Net's whole output
// depends on these values. Rounded once to float32, the result is within one float ulp of the CPU's MathF.
//
// Versions: one (Version1, one thread per output value).

using ILGPU;

namespace Diffusion.Kernels.Gpu;

public struct TimestepEmbeddingParams
{
    public int Batch, Dim, FlipSinToCos;

    public readonly int Half => Dim / 2;
}

public static class TimestepEmbedding
{
    public static void Version1(Index1D index, TimestepEmbeddingParams p, ArrayView<float> timesteps, ArrayView<float> frequencies,
        ArrayView<float> y)
    {
        int n = index / p.Dim;
        int column = index % p.Dim;
        int half = p.Half;
        if (column >= 2 * half)
        {
            y[index] = 0f;
            return;
        }
        bool firstHalf = column < half;
        int k = firstHalf ? column : column - half;
        float angle = timesteps[n] * frequencies[k];
        bool sine = firstHalf != (p.FlipSinToCos != 0);
        y[index] = (float)SinOrCos(angle, sine);
    }

    /// <summary>sin(x) or cos(x) in float64 arithmetic only: quadrant reduction by π/2 (split in two for exactness), then a polynomial.</summary>
    public static double SinOrCos(double x, bool sine)
    {
        const double TwoOverPi = 0.63661977236758134308;
        const double PiOver2High = 1.5707963109016418; // π/2 with its low 27 bits cleared: q·High is exact for |q| < 2^26
        const double PiOver2Low = 1.5893254773528197e-08;
        double q = Math.Floor(x * TwoOverPi + 0.5);
        double r = x - q * PiOver2High - q * PiOver2Low; // |r| ≤ π/4
        int quadrant = ((int)(q - 4.0 * Math.Floor(q * 0.25)) + (sine ? 0 : 1)) & 3;
        // sin(x + quadrant·π/2): quadrants 0..3 give sin r, cos r, −sin r, −cos r.
        double value = (quadrant & 1) == 0 ? SinPoly(r) : CosPoly(r);
        return (quadrant & 2) == 0 ? value : -value;
    }

    // Taylor series to r^17 / r^18: the first omitted term is below 1e-17 for |r| ≤ π/4.
    private static double SinPoly(double r)
    {
        double r2 = r * r;
        double s = 1.0 / 355687428096000.0;                      // 1/17!
        s = s * r2 - 1.0 / 1307674368000.0;                      // 1/15!
        s = s * r2 + 1.0 / 6227020800.0;
        s = s * r2 - 1.0 / 39916800.0;
        s = s * r2 + 1.0 / 362880.0;
        s = s * r2 - 1.0 / 5040.0;
        s = s * r2 + 1.0 / 120.0;
        s = s * r2 - 1.0 / 6.0;
        return r + r * r2 * s;
    }

    private static double CosPoly(double r)
    {
        double r2 = r * r;
        double c = 1.0 / 6402373705728000.0;                     // 1/18!
        c = c * r2 - 1.0 / 20922789888000.0;                     // 1/16!
        c = c * r2 + 1.0 / 87178291200.0;
        c = c * r2 - 1.0 / 479001600.0;
        c = c * r2 + 1.0 / 3628800.0;
        c = c * r2 - 1.0 / 40320.0;
        c = c * r2 + 1.0 / 720.0;
        c = c * r2 - 1.0 / 24.0;
        c = c * r2 + 0.5;
        return 1.0 - r2 * c;
    }
}
