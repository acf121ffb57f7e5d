namespace Diffusion.Kernels.Imaging;

/// <summary>8-bit pixels, row-major, <see cref="Channels"/> interleaved values per pixel (1 gray, 3 RGB).</summary>
public sealed record Image8(int Width, int Height, int Channels, byte[] Pixels);

/// <summary>
/// Samples to pixels the way diffusers' pipelines do (<c>(x/2 + 0.5).clamp(0, 1)</c>, ×255, rounded half to
/// even, in float32), several samples tiled into a near-square grid.
/// </summary>
public static class ImageGrid
{
    /// <summary>Pixels between neighbouring images of a grid, and their value (white, visible on dark images).</summary>
    public const int Gutter = 2;

    public const byte GutterValue = 255;

    public const int MaxScale = 16;

    /// <summary>The scale that shows a sample at least 128 pixels wide: 4 for 32×32 models, 1 from 128 up.</summary>
    public static int ReadableScale(int height, int width) => Math.Clamp((128 + Math.Max(height, width) - 1) / Math.Max(1, Math.Max(height, width)), 1, 8);

    /// <summary>
    /// Converts one sample (C, H, W), or tiles a batch (B, C, H, W) into ⌈√B⌉ columns. Each sample pixel becomes a
    /// <paramref name="scale"/>×<paramref name="scale"/> block (nearest neighbour), so 32×32 samples can be seen.
    /// </summary>
    public static Image8 FromSamples(HostTensor samples, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (scale is < 1 or > MaxScale) throw new DiffusionException($"the image scale must lie in 1..{MaxScale}, got {scale}");
        var shape = samples.Shape;
        if (shape.Length is not (3 or 4))
            throw new DiffusionException($"an image needs a (C, H, W) or (B, C, H, W) tensor, got ({string.Join(", ", shape)})");
        int batch = shape.Length == 4 ? shape[0] : 1;
        int channels = shape[^3], sampleHeight = shape[^2], sampleWidth = shape[^1];
        int height = checked(sampleHeight * scale), width = checked(sampleWidth * scale);
        if (channels is not (1 or 3))
            throw new DiffusionException($"an image needs 1 (gray) or 3 (RGB) channels, got {channels}");
        if (batch < 1 || sampleHeight < 1 || sampleWidth < 1)
            throw new DiffusionException($"cannot make an image of an empty tensor ({string.Join(", ", shape)})");

        var (columns, rows) = Layout(batch);
        int gridWidth = checked(columns * width + (columns - 1) * Gutter);
        int gridHeight = checked(rows * height + (rows - 1) * Gutter);
        var pixels = new byte[checked(gridWidth * gridHeight * channels)];
        Array.Fill(pixels, GutterValue);

        int plane = sampleHeight * sampleWidth;
        for (int b = 0; b < batch; b++)
        {
            int left = b % columns * (width + Gutter), top = b / columns * (height + Gutter);
            int sampleStart = b * channels * plane;
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    int pixel = ((top + y) * gridWidth + left + x) * channels;
                    for (int c = 0; c < channels; c++)
                        pixels[pixel + c] = ToByte(samples.Data[sampleStart + c * plane + y / scale * sampleWidth + x / scale]);
                }
            }
        }
        return new Image8(gridWidth, gridHeight, channels, pixels);
    }

    /// <summary>Columns = ⌈√B⌉, rows = ⌈B / columns⌉: 4 → 2×2, 5 → 3×2, 10 → 4×3.</summary>
    public static (int Columns, int Rows) Layout(int count)
    {
        int columns = (int)Math.Ceiling(Math.Sqrt(count));
        return (columns, (count + columns - 1) / columns);
    }

    /// <summary>[−1, 1] → 0..255; NaN becomes 0.</summary>
    public static byte ToByte(float value)
    {
        float v = value / 2f + 0.5f;
        v = v >= 0f ? MathF.Min(v, 1f) : 0f;
        return (byte)MathF.Round(v * 255f, MidpointRounding.ToEven);
    }
}
