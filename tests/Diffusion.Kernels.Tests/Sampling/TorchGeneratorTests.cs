using Diffusion.Kernels.Sampling;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

/// <summary>
/// <see cref="TorchCpuGenerator"/> against values torch 1.13 printed (weights/goldens/torch_randn.safetensors,
/// weights/make_goldens.py): bit for bit, on both of torch.randn's paths.
/// </summary>
public class TorchGeneratorTests
{
    private static readonly GoldenFile Golden = new(Path.Combine(RepositoryPaths.Goldens, "torch_randn.safetensors"));

    public static TheoryData<ulong> Seeds() => new(0UL, 1UL, 3UL, 42UL, (1UL << 32) + 5, (1UL << 63) + 12345);

    /// <summary>Lengths 1, 7, 15 (float64 Box–Muller, spare values carried between calls), then 16, 17, 31, 100 (AVX2 blocks, partial last block recomputed), all from one generator.</summary>
    [Theory]
    [MemberData(nameof(Seeds))]
    public void Randn_of_each_length_matches_torch_bit_for_bit(ulong seed)
    {
        int[] lengths = [1, 7, 15, 16, 17, 31, 100];
        var generator = new TorchCpuGenerator(seed);
        var drawn = lengths.SelectMany(generator.Randn).ToArray();
        AssertBits(drawn, Golden.Values($"seed_{seed}"), $"seed {seed}");
    }

    [Fact]
    public void A_whole_batch_of_noise_matches_torch_bit_for_bit()
    {
        ulong seed = (1UL << 32) + 5;
        AssertBits(new TorchCpuGenerator(seed).Randn(2 * 3 * 32 * 32), Golden.Values($"seed_{seed}.long"), "randn((2, 3, 32, 32))");
    }

    [Fact]
    public void Only_the_low_32_bits_of_the_seed_count_as_in_torch()
    {
        new TorchCpuGenerator((1UL << 32) + 5).Randn(40).Should().Equal(new TorchCpuGenerator(5).Randn(40));
    }

    /// <summary>The C++ standard's check of mt19937: the 10000th output of the default seed 5489 is 4123659995.</summary>
    [Fact]
    public void The_engine_is_the_standard_mt19937()
    {
        var generator = new TorchCpuGenerator(5489);
        for (int i = 1; i < 10000; i++) generator.NextUInt32();
        generator.NextUInt32().Should().Be(4123659995u);
    }

    private static void AssertBits(float[] actual, double[] expected, string what)
    {
        actual.Should().HaveCount(expected.Length);
        int first = Enumerable.Range(0, expected.Length)
            .FirstOrDefault(i => BitConverter.SingleToUInt32Bits(actual[i]) != BitConverter.SingleToUInt32Bits((float)expected[i]), -1);
        first.Should().Be(-1, $"{what}: value {first} is {(first < 0 ? 0 : actual[first]):R}, torch gave {(first < 0 ? 0 : expected[first]):R}");
    }
}
