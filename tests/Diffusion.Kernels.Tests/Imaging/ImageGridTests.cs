using Diffusion.Kernels.Imaging;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Imaging;

public class ImageGridTests
{
    [Theory]
    [InlineData(-1f, 0)]
    [InlineData(1f, 255)]
    [InlineData(0f, 128)] // 127.5 rounds half to even
    [InlineData(-0.5f, 64)] // 63.75
    [InlineData(3f, 255)]
    [InlineData(-7f, 0)]
    [InlineData(float.NaN, 0)]
    public void Values_map_from_minus_one_to_one_onto_0_to_255(float value, byte expected) =>
        ImageGrid.ToByte(value).Should().Be(expected);

    [Fact]
    public void Pixel_values_round_trip_through_the_diffusers_mapping()
    {
        // x = 2·(k/255) − 1 maps back to k for every byte value.
        for (int k = 0; k < 256; k++) ImageGrid.ToByte((float)(2.0 * k / 255 - 1)).Should().Be((byte)k);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 2, 1)]
    [InlineData(4, 2, 2)]
    [InlineData(5, 3, 2)]
    [InlineData(10, 4, 3)]
    [InlineData(16, 4, 4)]
    public void Batches_tile_near_square(int count, int columns, int rows) =>
        ImageGrid.Layout(count).Should().Be((columns, rows));

    [Fact]
    public void Rgb_samples_interleave_channels_and_sit_in_their_grid_cells()
    {
        // Batch of 3 RGB images, 2×2 each; image b has channel c = value (b·3 + c)/10 − 0.5 everywhere.
        const int batch = 3, channels = 3, size = 2;
        var data = new float[batch * channels * size * size];
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < channels; c++)
                Array.Fill(data, (b * 3 + c) / 10f - 0.5f, (b * channels + c) * size * size, size * size);
        var image = ImageGrid.FromSamples(new HostTensor([batch, channels, size, size], data));

        image.Width.Should().Be(2 * size + ImageGrid.Gutter);
        image.Height.Should().Be(2 * size + ImageGrid.Gutter);
        image.Channels.Should().Be(3);
        byte[] Pixel(int x, int y) => image.Pixels.AsSpan((y * image.Width + x) * 3, 3).ToArray();
        for (int b = 0; b < batch; b++)
        {
            int left = b % 2 * (size + ImageGrid.Gutter), top = b / 2 * (size + ImageGrid.Gutter);
            var expected = Enumerable.Range(0, 3).Select(c => ImageGrid.ToByte((b * 3 + c) / 10f - 0.5f)).ToArray();
            Pixel(left, top).Should().Equal(expected);
            Pixel(left + 1, top + 1).Should().Equal(expected);
        }
        Pixel(size, 0).Should().Equal(255, 255, 255);
        Pixel(image.Width - 1, image.Height - 1).Should().Equal([255, 255, 255], "the empty fourth cell stays gutter-coloured");
    }

    [Theory]
    [InlineData(new[] { 1, 2, 4, 4 })]
    [InlineData(new[] { 4, 4 })]
    [InlineData(new[] { 0, 3, 4, 4 })]
    public void Tensors_that_are_not_images_are_refused(int[] shape)
    {
        var act = () => ImageGrid.FromSamples(new HostTensor(shape));
        act.Should().Throw<DiffusionException>();
    }

    [Fact]
    public void Scaling_repeats_each_sample_pixel_as_a_block()
    {
        // A 2×3 gray sample with distinct values, shown 3× larger.
        var sample = new HostTensor([1, 1, 2, 3], [-1f, -0.5f, 0f, 0.25f, 0.5f, 1f]);

        var image = ImageGrid.FromSamples(sample, scale: 3);

        image.Width.Should().Be(9);
        image.Height.Should().Be(6);
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 9; x++)
                image.Pixels[y * 9 + x].Should().Be(ImageGrid.ToByte(sample.Data[y / 3 * 3 + x / 3]), $"pixel ({x}, {y})");
    }

    [Theory]
    [InlineData(32, 4)]
    [InlineData(28, 5)]
    [InlineData(128, 1)]
    [InlineData(512, 1)]
    public void The_default_scale_shows_samples_at_least_128_pixels_wide(int size, int scale) =>
        ImageGrid.ReadableScale(size, size).Should().Be(scale);

    [Theory]
    [InlineData(0)]
    [InlineData(17)]
    public void Scales_outside_1_to_16_are_refused(int scale)
    {
        var act = () => ImageGrid.FromSamples(new HostTensor([1, 1, 2, 2], [0f, 0f, 0f, 0f]), scale);
        act.Should().Throw<DiffusionException>().WithMessage("*scale*");
    }
}
