using System.Text;

namespace Diffusion.Kernels.Models;

/// <summary>
/// splitmix64 (Steele, Lea &amp; Flood): <c>state += 0x9E3779B97F4A7C15; z = state;
/// z = (z ^ z&gt;&gt;30) * 0xBF58476D1CE4E5B9; z = (z ^ z&gt;&gt;27) * 0x94D049BB133111EB; return z ^ z&gt;&gt;31</c>,
/// all mod 2^64. Bit-exact port of <c>weights/synthetic_weights.py</c>.
/// </summary>
public struct SplitMix64
{
    /// <summary>Current state; the next call adds the golden-ratio increment first.</summary>
    public ulong State;

    public SplitMix64(ulong state) => State = state;

    public ulong Next()
    {
        unchecked
        {
            State += 0x9E3779B97F4A7C15UL;
            ulong z = State;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>u = (Next() &gt;&gt; 40) · 2^-24, in [0, 1), exact (24 significant bits).</summary>
    public double NextUnit() => (Next() >> 40) * (1.0 / 16777216.0);
}

/// <summary>
/// Deterministic synthetic weights, inputs and noise, bit-exact with <c>weights/synthetic_weights.py</c>
/// (read its docstring for the full spec). Lets goldens for large architectures be checked
/// without committing weights.
/// <list type="bullet">
/// <item>Stream for (name, seed): <c>SplitMix64(seed ^ fnv1a64(utf8(name)))</c>; draw i gives
///   <c>u_i = (next &gt;&gt; 40)·2^-24</c>, <c>r_i = 2u_i − 1</c>.</item>
/// <item><see cref="Generate"/>: name contains "norm" → <c>.weight</c>: 1 + 0.25r, else 0.25r;
///   rank ≥ 2 → r / sqrt(prod(shape[1..])); otherwise (1-D biases) 0.1r.
///   Computed in double, rounded once to float.</item>
/// <item><see cref="Gaussian"/>: element i = sqrt(−2 ln(1 − u_{2i})) · cos(2π u_{2i+1}).</item>
/// </list>
/// </summary>
public static class SyntheticWeights
{
    /// <summary>FNV-1a 64-bit over the UTF-8 bytes of <paramref name="name"/>.</summary>
    public static ulong Fnv1a64(string name)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(name))
        {
            unchecked { h = (h ^ b) * 0x100000001B3UL; }
        }
        return h;
    }

    /// <summary>The generator for tensor <paramref name="name"/> under <paramref name="seed"/>.</summary>
    public static SplitMix64 Stream(string name, ulong seed) => new(seed ^ Fnv1a64(name));

    /// <summary>Synthetic parameter tensor, row-major, following the naming rule above.</summary>
    public static float[] Generate(string name, int[] shape, ulong seed)
    {
        long count = 1;
        foreach (int d in shape) count *= d;
        var result = new float[count];
        var rng = Stream(name, seed);

        // Affine map v = a + b·r, chosen by the rule; each branch matches the Python expression exactly.
        if (name.Contains("norm", StringComparison.Ordinal))
        {
            bool isWeight = name.EndsWith(".weight", StringComparison.Ordinal);
            for (long i = 0; i < count; i++)
            {
                double r = 2.0 * rng.NextUnit() - 1.0;
                result[i] = (float)(isWeight ? 1.0 + 0.25 * r : 0.25 * r);
            }
        }
        else if (shape.Length >= 2)
        {
            long fanIn = 1;
            for (int d = 1; d < shape.Length; d++) fanIn *= shape[d];
            double scale = 1.0 / Math.Sqrt(fanIn);
            for (long i = 0; i < count; i++)
            {
                double r = 2.0 * rng.NextUnit() - 1.0;
                result[i] = (float)(r * scale);
            }
        }
        else
        {
            for (long i = 0; i < count; i++)
            {
                double r = 2.0 * rng.NextUnit() - 1.0;
                result[i] = (float)(0.1 * r);
            }
        }
        return result;
    }

    /// <summary>r_i = 2u_i − 1 in [−1, 1) (exact in float).</summary>
    public static float[] Uniform(string name, int count, ulong seed)
    {
        var result = new float[count];
        var rng = Stream(name, seed);
        for (int i = 0; i < count; i++) result[i] = (float)(2.0 * rng.NextUnit() - 1.0);
        return result;
    }

    /// <summary>
    /// Box–Muller, cosine branch only: g_i = sqrt(−2 ln(1 − u_{2i})) · cos(2π u_{2i+1}); 1 − u ≥ 2^-24 so ln is finite.
    /// Bit-exact with Python on glibc; other libms may (very rarely) differ in the last float bit.
    /// </summary>
    public static float[] Gaussian(string name, int count, ulong seed)
    {
        var result = new float[count];
        var rng = Stream(name, seed);
        const double twoPi = 2.0 * Math.PI;
        for (int i = 0; i < count; i++)
        {
            double u1 = rng.NextUnit();
            double u2 = rng.NextUnit();
            result[i] = (float)(Math.Sqrt(-2.0 * Math.Log(1.0 - u1)) * Math.Cos(twoPi * u2));
        }
        return result;
    }
}
