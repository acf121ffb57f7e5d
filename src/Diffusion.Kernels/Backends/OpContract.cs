namespace Diffusion.Kernels.Backends;

/// <summary>
/// The shape and alias rules of every op of <see cref="IBackend"/>, checked once here and called by every backend
/// before it touches data, so the same misuse raises the same <see cref="BackendArgumentException"/> (and message)
/// whichever backend ran. Ownership (a tensor of another backend) is each backend's own check.
/// </summary>
public static class OpContract
{
    public static void PrepareConv2d(Conv2dSpec spec, int weightLength, int biasLength)
    {
        if (spec.InChannels <= 0 || spec.OutChannels <= 0 || spec.Kernel <= 0 || spec.Stride <= 0 || spec.PadBegin < 0 || spec.PadEnd < 0)
            throw new BackendArgumentException($"PrepareConv2d: unusable convolution {spec}");
        long expected = (long)spec.OutChannels * spec.InChannels * spec.Kernel * spec.Kernel;
        if (weightLength != expected)
            throw new BackendArgumentException($"PrepareConv2d: {spec} needs {expected} weights (out, in, k, k), got {weightLength}");
        if (biasLength != spec.OutChannels)
            throw new BackendArgumentException($"PrepareConv2d: {spec} needs {spec.OutChannels} bias values, got {biasLength}");
    }

    /// <summary>Returns the output height and width.</summary>
    public static (int Height, int Width) Conv2d(DeviceTensor x, Conv2dSpec spec, DeviceTensor y, in Conv2dEpilogue epilogue)
    {
        const string Op = "Conv2d";
        Require(x.Rank == 4 && x.C == spec.InChannels, Op, $"x {Describe(x)} is not (N, {spec.InChannels}, H, W)");
        int ho = spec.OutputSize(x.H), wo = spec.OutputSize(x.W);
        Require(ho > 0 && wo > 0, Op, $"x {Describe(x)} is smaller than the {spec.Kernel}×{spec.Kernel} kernel");
        Require(y.Rank == 4 && y.N == x.N && y.C == spec.OutChannels && y.H == ho && y.W == wo, Op,
            $"y {Describe(y)} is not ({x.N}, {spec.OutChannels}, {ho}, {wo})");
        Require(!ReferenceEquals(x, y), Op, "y may not alias x");
        if (epilogue.ChannelBias is { } cb)
            Require(cb.Shape[0] == x.N && cb.Length == (long)x.N * spec.OutChannels, Op, $"channel bias {Describe(cb)} is not ({x.N}, {spec.OutChannels})");
        if (epilogue.Residual is { } residual)
        {
            Require(residual.SameShape(y), Op, $"residual {Describe(residual)} does not match y {Describe(y)}");
            Require(!ReferenceEquals(residual, y), Op, "the residual may not alias y");
        }
        return (ho, wo);
    }

    public static void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, DeviceTensor y)
    {
        const string Op = "GroupNorm";
        Require(x.Rank >= 2, Op, $"x {Describe(x)} has no channel axis");
        Require(y.SameShape(x), Op, $"y {Describe(y)} does not match x {Describe(x)}");
        Require(groups > 0 && x.C % groups == 0, Op, $"{x.C} channels do not split into {groups} groups");
        Require(gamma.Length == x.C && beta.Length == x.C, Op, $"gamma and beta need {x.C} values each");
        Require(eps >= 0f, Op, "eps is negative");
    }

    public static void PrepareLinear(int inFeatures, int outFeatures, int weightLength, int biasLength)
    {
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new BackendArgumentException($"PrepareLinear: unusable size {inFeatures} -> {outFeatures}");
        if (weightLength != (long)inFeatures * outFeatures)
            throw new BackendArgumentException($"PrepareLinear: {inFeatures} -> {outFeatures} needs {(long)inFeatures * outFeatures} weights, got {weightLength}");
        if (biasLength != outFeatures)
            throw new BackendArgumentException($"PrepareLinear: {inFeatures} -> {outFeatures} needs {outFeatures} bias values, got {biasLength}");
    }

    public static void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y)
    {
        const string Op = "Linear";
        Require(x.Rank == 2 && x.Shape[1] == weights.InFeatures, Op, $"x {Describe(x)} is not (rows, {weights.InFeatures})");
        Require(y.Rank == 2 && y.Shape[0] == x.Shape[0] && y.Shape[1] == weights.OutFeatures, Op,
            $"y {Describe(y)} is not ({x.Shape[0]}, {weights.OutFeatures})");
        Require(!ReferenceEquals(x, y), Op, "y may not alias x");
    }

    public static void SiLU(DeviceTensor x, DeviceTensor y) =>
        Require(y.SameShape(x), "SiLU", $"y {Describe(y)} does not match x {Describe(x)}");

    public static void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y) =>
        Require(b.SameShape(a) && y.SameShape(a), "Add", $"shapes differ: a {Describe(a)}, b {Describe(b)}, y {Describe(y)}");

    public static void Upsample2x(DeviceTensor x, DeviceTensor y)
    {
        Require(x.Rank == 4, "Upsample2x", $"x {Describe(x)} is not (N, C, H, W)");
        Require(y.Rank == 4 && y.N == x.N && y.C == x.C && y.H == 2 * x.H && y.W == 2 * x.W, "Upsample2x",
            $"y {Describe(y)} is not ({x.N}, {x.C}, {2 * x.H}, {2 * x.W})");
    }

    public static void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y)
    {
        Require(a.Rank == 4 && b.Rank == 4 && a.N == b.N && a.H == b.H && a.W == b.W, "Concat",
            $"a {Describe(a)} and b {Describe(b)} differ in more than channels");
        Require(y.Rank == 4 && y.N == a.N && y.C == a.C + b.C && y.H == a.H && y.W == a.W, "Concat",
            $"y {Describe(y)} is not ({a.N}, {a.C + b.C}, {a.H}, {a.W})");
        Require(!ReferenceEquals(a, y) && !ReferenceEquals(b, y), "Concat", "y may not alias a or b");
    }

    /// <summary>Returns the embedding width.</summary>
    public static int TimestepEmbedding(int timesteps, float freqShift, DeviceTensor y)
    {
        Require(y.Rank == 2 && y.Shape[0] == timesteps, "TimestepEmbedding", $"y {Describe(y)} is not ({timesteps}, dim) for {timesteps} timesteps");
        int dim = y.Shape[1];
        Require(dim / 2 > 0 && dim / 2 - freqShift != 0f, "TimestepEmbedding", $"dim {dim} with shift {freqShift} has no frequencies");
        return dim;
    }

    /// <summary>Returns the channel count C of the output.</summary>
    public static int Attention(DeviceTensor qkv, DeviceTensor y, int heads)
    {
        const string Op = "Attention";
        Require(qkv.Rank == 4 && qkv.C % 3 == 0, Op, $"qkv {Describe(qkv)} is not (N, 3C, H, W)");
        int channels = qkv.C / 3;
        Require(heads > 0 && channels % heads == 0, Op, $"{channels} channels do not split into {heads} heads");
        Require(y.Rank == 4 && y.N == qkv.N && y.C == channels && y.H == qkv.H && y.W == qkv.W, Op,
            $"y {Describe(y)} is not ({qkv.N}, {channels}, {qkv.H}, {qkv.W})");
        Require(!ReferenceEquals(qkv, y), Op, "y may not alias qkv");
        return channels;
    }

    public static void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
        DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next)
    {
        const string Op = "SamplerStep";
        Require(modelOutput.SameShape(sample) && next.SameShape(sample), Op,
            $"sample {Describe(sample)}, model output {Describe(modelOutput)} and next {Describe(next)} differ");
        Optional(noise, coefficients.NextFromNoise, nameof(noise), sample);
        Optional(prevX0, coefficients.NextFromPrevX0, nameof(prevX0), sample);
        if (x0Out != null)
        {
            Require(x0Out.SameShape(sample), Op, $"x0Out {Describe(x0Out)} does not match sample {Describe(sample)}");
            Require(!ReferenceEquals(x0Out, next), Op, "x0Out may not alias next");
        }
    }

    private static void Optional(DeviceTensor? tensor, float coefficient, string name, DeviceTensor sample)
    {
        if (tensor == null)
            Require(coefficient == 0f, "SamplerStep", $"{name} is missing but its coefficient is {coefficient}");
        else
            Require(tensor.SameShape(sample), "SamplerStep", $"{name} {Describe(tensor)} does not match sample {Describe(sample)}");
    }

    private static void Require(bool condition, string op, string problem)
    {
        if (!condition) throw new BackendArgumentException($"{op}: {problem}");
    }

    private static string Describe(DeviceTensor t) => $"({string.Join(", ", t.ShapeArray())})";
}
