namespace Diffusion.Kernels.Tests.Kernels;

/// <summary>
/// The ops written the plain way, in float64, straight from their definitions. Slow and obvious on purpose:
/// they are what the kernels are measured against, and the first thing to read to learn what a kernel does.
/// </summary>
internal static class Reference
{
    public static double[] Conv2d(float[] x, int n, int cin, int h, int w, float[] weight, float[] bias,
        int cout, int kernel, int stride, int padBegin, int padEnd, float[]? channelBias = null, float[]? residual = null, float scale = 1f)
    {
        int ho = (h + padBegin + padEnd - kernel) / stride + 1;
        int wo = (w + padBegin + padEnd - kernel) / stride + 1;
        var y = new double[n * cout * ho * wo];
        for (int b = 0; b < n; b++)
        for (int co = 0; co < cout; co++)
        for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++)
        {
            double sum = bias[co];
            for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < kernel; ky++)
            for (int kx = 0; kx < kernel; kx++)
            {
                int iy = oy * stride + ky - padBegin, ix = ox * stride + kx - padBegin;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += (double)weight[((co * cin + ci) * kernel + ky) * kernel + kx] * x[((b * cin + ci) * h + iy) * w + ix];
            }
            int at = ((b * cout + co) * ho + oy) * wo + ox;
            if (channelBias != null) sum += channelBias[b * cout + co];
            if (residual != null) sum += residual[at];
            y[at] = sum * scale;
        }
        return y;
    }

    public static double[] GroupNorm(float[] x, int n, int c, int plane, float[] gamma, float[] beta, int groups, double eps, bool silu)
    {
        var y = new double[x.Length];
        int perGroup = c / groups;
        for (int b = 0; b < n; b++)
        for (int g = 0; g < groups; g++)
        {
            int start = (b * c + g * perGroup) * plane, count = perGroup * plane;
            double mean = 0;
            for (int i = 0; i < count; i++) mean += x[start + i];
            mean /= count;
            double variance = 0;
            for (int i = 0; i < count; i++) variance += (x[start + i] - mean) * (x[start + i] - mean);
            variance /= count;
            for (int i = 0; i < count; i++)
            {
                int channel = g * perGroup + i / plane;
                double v = (x[start + i] - mean) / Math.Sqrt(variance + eps) * gamma[channel] + beta[channel];
                y[start + i] = silu ? SiLU(v) : v;
            }
        }
        return y;
    }

    public static double[] Attention(float[] qkv, int n, int channels, int tokens, int heads)
    {
        int d = channels / heads;
        var y = new double[n * channels * tokens];
        var scores = new double[tokens];
        for (int b = 0; b < n; b++)
        for (int h = 0; h < heads; h++)
        {
            double Q(int c, int t) => qkv[(b * 3 * channels + h * d + c) * tokens + t];
            double K(int c, int t) => qkv[(b * 3 * channels + channels + h * d + c) * tokens + t];
            double V(int c, int t) => qkv[(b * 3 * channels + 2 * channels + h * d + c) * tokens + t];
            for (int i = 0; i < tokens; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < tokens; j++)
                {
                    double s = 0;
                    for (int c = 0; c < d; c++) s += Q(c, i) * K(c, j);
                    scores[j] = s / Math.Sqrt(d);
                    max = Math.Max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j < tokens; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                for (int c = 0; c < d; c++)
                {
                    double o = 0;
                    for (int j = 0; j < tokens; j++) o += scores[j] / sum * V(c, j);
                    y[(b * channels + h * d + c) * tokens + i] = o;
                }
            }
        }
        return y;
    }

    public static double[] Linear(float[] x, int rows, int inF, int outF, float[] weight, float[] bias, bool siluInput)
    {
        var y = new double[rows * outF];
        for (int r = 0; r < rows; r++)
        for (int o = 0; o < outF; o++)
        {
            double sum = bias[o];
            for (int i = 0; i < inF; i++)
            {
                double v = x[r * inF + i];
                sum += weight[o * inF + i] * (siluInput ? SiLU(v) : v);
            }
            y[r * outF + o] = sum;
        }
        return y;
    }

    public static double SiLU(double v) => v / (1 + Math.Exp(-v));

    public static double[] TimestepEmbedding(float[] timesteps, int dim, bool flipSinToCos, double freqShift)
    {
        int half = dim / 2;
        var y = new double[timesteps.Length * dim];
        for (int b = 0; b < timesteps.Length; b++)
        for (int k = 0; k < half; k++)
        {
            double angle = timesteps[b] * Math.Exp(-Math.Log(10000) * k / (half - freqShift));
            y[b * dim + k] = flipSinToCos ? Math.Cos(angle) : Math.Sin(angle);
            y[b * dim + half + k] = flipSinToCos ? Math.Sin(angle) : Math.Cos(angle);
        }
        return y;
    }
}
