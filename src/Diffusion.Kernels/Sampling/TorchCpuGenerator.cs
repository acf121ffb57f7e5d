namespace Diffusion.Kernels.Sampling;

/// <summary>
/// PyTorch's CPU generator (<c>torch.Generator()</c>, <c>torch.manual_seed</c>) and its <c>torch.randn</c> for
/// float32, bit for bit as torch 1.13's x86-64 build computes them, so a seed gives the noise diffusers gives:
/// <list type="bullet">
/// <item>the engine is mt19937 seeded with the seed's low 32 bits (<c>at::mt19937</c> keeps only those);
///   <c>random()</c> is one 32-bit output, <c>random64()</c> two, the first as the high half;</item>
/// <item>fewer than 16 values (<see cref="Randn"/>'s scalar path, <c>normal_distribution&lt;double&gt;</c>): each
///   value is Box–Muller in float64 from two 53-bit uniforms u1, u2 (<c>random64() &amp; (2^53 − 1)</c> · 2^−53):
///   r = √(−2 ln(1 − u2)), θ = 2π·u1, value r·cos θ, and r·sin θ is kept in the generator as the spare that the
///   next scalar draw returns first, across calls, until a reseed;</item>
/// <item>16 or more (<c>normal_fill_AVX2</c>): every value first gets a 24-bit float uniform
///   (<c>random() &amp; (2^24 − 1)</c> · 2^−24), then each block of 16 becomes 8 pairs, u1 = 1 − data[j],
///   u2 = data[j + 8]: data[j] = √(−2·log(u1))·cos(2π·u2), data[j + 8] = the same with sin, in float32 with
///   the polynomial log/sincos of avx_mathfun.h (<see cref="TorchAvxMath"/>). When the count is not a multiple
///   of 16, 16 fresh uniforms overwrite the last 16 values and that block is transformed again.</item>
/// </list>
/// torch dispatches the AVX2 kernel on every x86-64 CPU with AVX2 (its AVX-512 build deliberately falls back to
/// it for randn), which is what this reproduces; CPUs without AVX2 and ARM builds take a scalar float path whose
/// values differ in the last bits.
/// </summary>
public sealed class TorchCpuGenerator
{
    private const int N = 624, M = 397;
    private readonly uint[] _state = new uint[N];
    private int _next = N;
    private double? _spareNormal;

    public TorchCpuGenerator(ulong seed)
    {
        Seed = seed;
        uint s = (uint)seed;
        _state[0] = s;
        for (int i = 1; i < N; i++)
            _state[i] = unchecked(1812433253u * (_state[i - 1] ^ (_state[i - 1] >> 30)) + (uint)i);
    }

    public ulong Seed { get; }

    /// <summary>One mt19937 output (torch's <c>generator->random()</c>).</summary>
    public uint NextUInt32()
    {
        if (_next >= N) Twist();
        uint y = _state[_next++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C5680u;
        y ^= (y << 15) & 0xEFC60000u;
        return y ^ (y >> 18);
    }

    /// <summary>torch's <c>random64()</c>: two outputs, the first as the high 32 bits.</summary>
    public ulong NextUInt64()
    {
        ulong high = NextUInt32();
        return (high << 32) | NextUInt32();
    }

    /// <summary><c>torch.randn(count, generator=g)</c> in float32; any shape of that many elements draws the same values.</summary>
    public float[] Randn(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var data = new float[count];
        if (count < 16)
        {
            for (int i = 0; i < count; i++) data[i] = (float)NextNormalDouble();
            return data;
        }
        for (int i = 0; i < count; i++) data[i] = NextUniformFloat();
        for (int i = 0; i + 16 <= count; i += 16) TorchAvxMath.NormalFill16(data.AsSpan(i, 16));
        if (count % 16 != 0)
        {
            var tail = data.AsSpan(count - 16, 16);
            for (int i = 0; i < 16; i++) tail[i] = NextUniformFloat();
            TorchAvxMath.NormalFill16(tail);
        }
        return data;
    }

    /// <summary>uniform_real_distribution&lt;float&gt;(0, 1): the low 24 bits of one output, exact in float.</summary>
    private float NextUniformFloat() => (NextUInt32() & 0xFFFFFFu) * (1f / 16777216f);

    private double NextUniformDouble() => (NextUInt64() & ((1UL << 53) - 1)) * (1.0 / (1UL << 53));

    /// <summary>normal_distribution&lt;double&gt;(0, 1), spare included; glibc's log/sin/cos are what torch calls too.</summary>
    private double NextNormalDouble()
    {
        if (_spareNormal is { } spare)
        {
            _spareNormal = null;
            return spare;
        }
        double u1 = NextUniformDouble();
        double u2 = NextUniformDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(1.0 - u2));
        double theta = 2.0 * Math.PI * u1;
        _spareNormal = r * Math.Sin(theta);
        return r * Math.Cos(theta);
    }

    private void Twist()
    {
        for (int i = 0; i < N; i++)
        {
            uint y = (_state[i] & 0x80000000u) | (_state[(i + 1) % N] & 0x7FFFFFFFu);
            _state[i] = _state[(i + M) % N] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908B0DFu : 0u);
        }
        _next = 0;
    }
}
