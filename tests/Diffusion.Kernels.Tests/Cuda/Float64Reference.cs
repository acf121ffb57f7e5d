namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>The ops in float64, written as plainly as possible: what the CUDA kernels are checked against.</summary>
internal static class Float64Reference
{
    public static double[] Conv2d(float[] x, int n, int cin, int h, int w, float[] weight, float[] bias, int cout, int k, int stride,
        int padBegin, int padEnd, float[]? channelBias, float[]? residual, float scale)
    {
        int ho = (h + padBegin + padEnd - k) / stride + 1, wo = (w + padBegin + padEnd - k) / stride + 1;
        var y = new double[n * cout * ho * wo];
        for (int b = 0; b < n; b++)
            for (int co = 0; co < cout; co++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++)
                    {
                        double acc = bias[co];
                        for (int ci = 0; ci < cin; ci++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int iy = oy * stride - padBegin + ky, ix = ox * stride - padBegin + kx;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                    acc += (double)weight[((co * cin + ci) * k + ky) * k + kx] * x[((b * cin + ci) * h + iy) * w + ix];
                                }
                        int index = ((b * cout + co) * ho + oy) * wo + ox;
                        if (channelBias != null) acc += channelBias[b * cout + co];
                        if (residual != null) acc += residual[index];
                        y[index] = acc * scale;
                    }
        return y;
    }

    public static double[] GroupNorm(float[] x, int n, int c, int hw, float[] gamma, float[] beta, int groups, double eps, bool silu)
    {
        var y = new double[x.Length];
        int per = c / groups * hw;
        for (int b = 0; b < n; b++)
            for (int g = 0; g < groups; g++)
            {
                int start = (b * c + g * (c / groups)) * hw;
                double mean = 0, variance = 0;
                for (int i = 0; i < per; i++) mean += x[start + i];
                mean /= per;
                for (int i = 0; i < per; i++) variance += (x[start + i] - mean) * (x[start + i] - mean);
                variance /= per;
                for (int i = 0; i < per; i++)
                {
                    int ch = g * (c / groups) + i / hw;
                    double v = (x[start + i] - mean) / Math.Sqrt(variance + eps) * gamma[ch] + beta[ch];
                    y[start + i] = silu ? Silu(v) : v;
                }
            }
        return y;
    }

    public static double[] Linear(float[] x, int rows, int inF, float[] weight, float[] bias, int outF, bool siluInput)
    {
        var y = new double[rows * outF];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outF; o++)
            {
                double acc = bias[o];
                for (int i = 0; i < inF; i++) acc += (double)weight[o * inF + i] * (siluInput ? Silu(x[r * inF + i]) : x[r * inF + i]);
                y[r * outF + o] = acc;
            }
        return y;
    }

    public static double[] Attention(float[] qkv, int n, int c, int tokens, int heads)
    {
        int d = c / heads;
        var y = new double[n * c * tokens];
        var scores = new double[tokens];
        for (int b = 0; b < n; b++)
            for (int h = 0; h < heads; h++)
                for (int t = 0; t < tokens; t++)
                {
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < tokens; j++)
                    {
                        double s = 0;
                        for (int i = 0; i < d; i++)
                            s += (double)qkv[((b * 3 * c) + h * d + i) * tokens + t] * qkv[((b * 3 * c) + c + h * d + i) * tokens + j];
                        scores[j] = s / Math.Sqrt(d);
                        max = Math.Max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < tokens; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                    for (int i = 0; i < d; i++)
                    {
                        double o = 0;
                        for (int j = 0; j < tokens; j++) o += scores[j] * qkv[((b * 3 * c) + 2 * c + h * d + i) * tokens + j];
                        y[(b * c + h * d + i) * tokens + t] = o / sum;
                    }
                }
        return y;
    }

    public static double Silu(double v) => v / (1 + Math.Exp(-v));

    /// <summary>‖actual − expected‖₂ / ‖expected‖₂.</summary>
    public static double NormalisedError(float[] actual, double[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff / Math.Max(norm, double.Epsilon));
    }

    public static float[] Random(Random rng, int count, float scale = 1f)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return values;
    }
}
