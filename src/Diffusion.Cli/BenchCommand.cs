using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Diffusion.Kernels;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Gpu;
using Diffusion.Kernels.Gpu;
using Diffusion.Kernels.Models;

namespace Diffusion.Cli;

/// <summary>
/// <c>diffuse bench</c>: each kernel on the real shapes of the DDPM CIFAR-10 U-Net, first checked against the CPU
/// backend on random inputs (normalised error under a per-op tolerance, or the run fails), then timed: warm-up,
/// several iterations over rotated input copies, median. GPU time comes from CUDA events, CPU time from a
/// stopwatch around the op and a synchronise. <c>--versions</c> runs every kernel version (kernel-lab style);
/// <c>--json</c> writes the rows for scripts (bench/cudnn/compare.py reads them to time the same ops in PyTorch).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var device = CliOptions.Device();
        var ops = CliOptions.List("--ops", "OP[,OP...]", $"ops to run, of {string.Join(", ", BenchCases.OpNames)}", $"one of {string.Join(", ", BenchCases.OpNames)}",
            (string part, out string op) => BenchCases.OpNames.Contains(op = part), DefaultOps);
        var batches = CliOptions.List("--batch", "B[,B...]", "batch sizes", $"a batch size in 1..{MaxBatch}",
            (string part, out int b) => int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out b) && b >= 1 && b <= MaxBatch,
            "1,64");
        var versions = CliOptions.Flag("--versions", "run every kernel version (CUDA), not only the selected one");
        var half = CliOptions.Flag("--half", "CUDA: half-precision tensor-core convolutions and attention (conv2d and attention version 3)");
        var iterations = CliOptions.WholeNumber("--iterations", "N", "timed runs per op; the median is reported (default: 20)", 1);
        var warmup = CliOptions.WholeNumber("--warmup", "N", "untimed runs before timing (default: 3)", 0);
        var json = CliOptions.OutputFile("--json", ".json", "also write the results as JSON to this file");
        var force = CliOptions.Force();
        var verbose = CliOptions.Verbose();
        var command = new Command("bench", "Check each kernel against the CPU backend, then time it on the CIFAR-10 U-Net's shapes.")
        {
            device, ops, batches, versions, half, iterations, warmup, json, force, verbose,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(half) && result.GetValue(device) == DeviceKind.Cpu)
                result.AddError("--half needs the CUDA backend; drop it or pass --device cuda");
        });
        command.SetAction((parse, ct) => CliErrors.Run(parse.GetValue(verbose), () =>
        {
            var settings = new BenchSettings(
                parse.GetValue(device) ?? DeviceKind.Auto,
                (parse.GetValue(ops) ?? DefaultOps.Split(',')).ToHashSet(),
                parse.GetValue(batches) ?? [1, 64],
                parse.GetValue(versions),
                parse.GetValue(half),
                parse.GetValue(iterations) ?? 20,
                parse.GetValue(warmup) ?? 3);
            string? jsonPath = parse.GetValue(json);
            if (jsonPath != null) OutputFiles.EnsureWritable("--json", jsonPath, parse.GetValue(force), Console.Error);
            int code = Run(settings, jsonPath, parse.GetValue(force), Console.Out, Console.Error, ct);
            return jsonPath == null ? ConsoleStreams.RequireOutput(code) : code;
        }));
        return command;
    }

    private const string DefaultOps = "conv,attention,group_norm,linear,sampler";

    private const int MaxBatch = 4096;

    internal static int Run(BenchSettings settings, string? jsonPath, bool force, TextWriter output, TextWriter log, CancellationToken ct)
    {
        using var reference = BackendFactory.Create(DeviceKind.Cpu, out _);
        using var targets = BenchTargets.Open(settings, reference, log, out string? unavailable);
        if (targets == null)
        {
            log.WriteLine($"diffuse: no usable CUDA GPU: {unavailable}");
            return ExitCodes.DeviceUnavailable;
        }
        log.WriteLine($"device: {targets.Description}");
        log.WriteLine($"reference: {reference.DeviceDescription}");

        var rows = new List<BenchRow>();
        var table = new BenchTable(output);
        table.Header();
        foreach (var benchCase in BenchCases.All.Where(c => settings.Ops.Contains(c.Op)))
        {
            foreach (int batch in settings.Batches)
            {
                ct.ThrowIfCancellationRequested();
                float[]? expected = null;
                foreach (var (label, backend) in targets.For(benchCase.Op))
                {
                    if (benchCase.CudaOnly && backend is not GpuBackend { IsEmulated: false }) continue;
                    var row = Measure(benchCase, batch, label, backend, reference, ref expected, targets.Peak, settings, ct);
                    rows.Add(row);
                    table.Row(row);
                }
            }
        }

        if (jsonPath != null)
        {
            var document = new
            {
                device = targets.Description,
                reference = reference.DeviceDescription,
                command = "diffuse " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                date = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
                peak = targets.Peak,
                rows,
            };
            OutputFiles.WriteAll([new(jsonPath, stream => JsonSerializer.Serialize(stream, document, new JsonSerializerOptions { WriteIndented = true }))], force, ct);
            log.WriteLine($"wrote {jsonPath}");
        }

        var failed = rows.Where(r => !r.Passed).ToList();
        if (failed.Count == 0) return ExitCodes.Success;
        log.WriteLine($"diffuse: {failed.Count} kernel result(s) differ from the CPU backend beyond tolerance:");
        foreach (var r in failed)
            log.WriteLine(FormattableString.Invariant($"  {r.Op} {r.Shape} batch {r.Batch} {r.Version}: normalised error {r.Error:0.00E+0} > {r.Tolerance:0E+0}"));
        return ExitCodes.Internal;
    }

    /// <summary>Checks one op on one backend against the reference, then times it.</summary>
    private static BenchRow Measure(BenchCase benchCase, int batch, string label, IBackend backend, IBackend reference,
        ref float[]? expected, DevicePeak? peak, BenchSettings settings, CancellationToken ct)
    {
        bool half = label.Contains("fp16", StringComparison.Ordinal);
        int checkBatch = benchCase.CheckBatch(batch);
        double? error = null; // not checked: the CPU against itself, or a replay of already-checked kernels
        if (!ReferenceEquals(backend, reference) && benchCase.Checked)
        {
            // Reference results are computed once per case and batch, then shared by every version.
            expected ??= RunOnce(benchCase, reference, checkBatch);
            error = NormalisedError(RunOnce(benchCase, backend, checkBatch), expected);
        }
        double tolerance = benchCase.Tolerance(half);

        int copies = benchCase.Copies(batch);
        using var run = benchCase.Prepare(backend, batch, copies);
        var times = new double[settings.Iterations];
        for (int i = 0; i < settings.Warmup; i++) run.Issue(i);
        backend.Synchronize();
        for (int i = 0; i < settings.Iterations; i++)
        {
            ct.ThrowIfCancellationRequested();
            times[i] = Time(backend, () => run.Issue(i));
        }
        Array.Sort(times);
        double ms = times[times.Length / 2];

        double flops = benchCase.Flops(batch), bytes = benchCase.Bytes(batch);
        double? percent = null;
        if (peak != null)
        {
            bool compute = benchCase.ComputeBound;
            double? ceiling = compute ? (half ? peak.Float16TensorFlops : peak.Float32Flops) : peak.BytesPerSecond;
            double achieved = (compute ? flops : bytes) / (ms * 1e-3);
            if (ceiling is double c && c > 0) percent = 100 * achieved / c;
        }
        return new BenchRow(benchCase.Op, benchCase.Name, batch, label, ms, times[0],
            flops > 0 ? flops / (ms * 1e6) : null, bytes > 0 ? bytes / (ms * 1e6) : null, percent,
            error, tolerance, error is not double e || e <= tolerance, copies, benchCase.Parameters);
    }

    private static double Time(IBackend backend, Action issue)
    {
        if (backend is GpuBackend gpu) return gpu.TimeMilliseconds(issue);
        long start = Stopwatch.GetTimestamp();
        issue();
        backend.Synchronize();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private static float[] RunOnce(BenchCase benchCase, IBackend backend, int batch)
    {
        using var run = benchCase.Prepare(backend, batch, copies: 1);
        run.Issue(0);
        var output = run.Output;
        var data = new float[output.Length];
        backend.Download(output, data);
        return data;
    }

    /// <summary>‖actual − expected‖₂ / ‖expected‖₂ in float64; infinite on NaN so a broken kernel cannot pass.</summary>
    internal static double NormalisedError(float[] actual, float[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            diff += d * d;
            norm += (double)expected[i] * expected[i];
        }
        double error = Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
        return double.IsNaN(error) ? double.PositiveInfinity : error;
    }
}

internal sealed record BenchSettings(DeviceKind Device, HashSet<string> Ops, int[] Batches, bool AllVersions, bool Half, int Iterations, int Warmup);

/// <summary>One line of the report; also the JSON schema compare.py reads.</summary>
internal sealed record BenchRow(string Op, string Shape, int Batch, string Version, double Ms, double BestMs, double? Gflops,
    double? GBps, double? PercentOfPeak, double? Error, double Tolerance, bool Passed, int Copies, IReadOnlyDictionary<string, object> Params);

internal sealed class BenchTable(TextWriter output)
{
    public void Header()
    {
        output.WriteLine($"{"op",-10} {"shape",-34} {"batch",5} {"version",-12} {"ms",10} {"GFLOP/s",9} {"GB/s",8} {"% peak",7} {"error",9}");
        output.WriteLine(new string('-', 112));
    }

    public void Row(BenchRow r)
    {
        string Fmt(double? v, string format) => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "-";
        output.WriteLine(FormattableString.Invariant(
            $"{r.Op,-10} {r.Shape,-34} {r.Batch,5} {r.Version,-12} {r.Ms,10:F4} {Fmt(r.Gflops, "F0"),9} {Fmt(r.GBps, "F0"),8} {Fmt(r.PercentOfPeak, "F1"),7} {Fmt(r.Error, "0.0E+0"),9}") +
            (r.Passed ? "" : "  MISMATCH"));
    }
}

/// <summary>
/// The backends under test: the CPU backend, or one CUDA backend per kernel-version set that is measured
/// (created lazily; with <c>--versions</c> every version of an op is run with the other ops at their defaults).
/// </summary>
internal sealed class BenchTargets : IDisposable
{
    private readonly IBackend? _cpu;
    private readonly GpuBackend? _cuda;
    private readonly Dictionary<KernelVersions, GpuBackend> _variants = [];
    private readonly BenchSettings _settings;

    private BenchTargets(BenchSettings settings, IBackend? cpu, GpuBackend? cuda)
    {
        _settings = settings;
        _cpu = cpu;
        _cuda = cuda;
        if (cuda != null) _variants[cuda.Versions] = cuda;
    }

    public string Description => _cuda?.DeviceDescription ?? _cpu!.DeviceDescription;

    public DevicePeak? Peak => _cuda?.Peak;

    /// <summary>Null (with the reason) when CUDA was asked for and no GPU is usable.</summary>
    public static BenchTargets? Open(BenchSettings settings, IBackend cpu, TextWriter log, out string? unavailable)
    {
        unavailable = null;
        if (settings.Device != DeviceKind.Cpu)
        {
            if (settings.Device == DeviceKind.Emulated)
                return new BenchTargets(settings, null, GpuBackend.CreateEmulated(ChosenVersions(settings)));
            if (GpuBackend.TryCreateCuda(out var cuda, out string reason, versions: ChosenVersions(settings)))
                return new BenchTargets(settings, null, cuda);
            if (settings.Device == DeviceKind.Cuda)
            {
                unavailable = reason;
                return null;
            }
            log.WriteLine($"CUDA unavailable ({reason}); benchmarking the CPU backend");
        }
        if (settings.Half) throw new UsageException("--half needs the CUDA backend");
        return new BenchTargets(settings, cpu, null);
    }

    private static KernelVersions ChosenVersions(BenchSettings settings) =>
        settings.Half ? KernelVersions.FromEnvironment().WithHalfPrecision() : KernelVersions.FromEnvironment();

    /// <summary>The (label, backend) pairs that run <paramref name="op"/>.</summary>
    public IEnumerable<(string Label, IBackend Backend)> For(string op)
    {
        if (_cuda == null)
        {
            yield return (_cpu is CpuBackend cpu ? "cpu-" + CpuTiers.Name(cpu.Tier) : "cpu", _cpu!);
            yield break;
        }
        string? kernelOp = op switch { "conv" => "conv2d", "group_norm" => "group_norm", "attention" => "attention", "linear" => "linear", _ => null };
        if (op is "unet" or "unet_graph")
        {
            // Whole-network rows compare float32 with half precision (tensor-core convolutions and attention) rather
            // than every kernel version.
            bool half = _cuda.Versions.UsesHalfPrecision;
            yield return (half ? "fp16" : "fp32", _cuda);
            if (_settings.AllVersions && HalfVariant(half) is { } other)
                yield return (half ? "fp32" : "fp16", Variant(other));
            yield break;
        }
        if (kernelOp == null || !_settings.AllVersions)
        {
            yield return (kernelOp == null ? "-" : Label(kernelOp, _cuda.Versions.Of(kernelOp)), _cuda);
            yield break;
        }
        int latest = KernelCatalog.Latest(kernelOp);
        for (int v = 1; v <= latest; v++)
            yield return (Label(kernelOp, v), Variant(_cuda.Versions.With(kernelOp, v)));
    }

    public void Dispose()
    {
        foreach (var backend in _variants.Values.Reverse()) backend.Dispose();
    }

    private static string Label(string kernelOp, int version) =>
        KernelCatalog.IsHalf(kernelOp, version) ? $"v{version} fp16" : $"v{version}";

    /// <summary>The other precision's versions for the whole-network rows; null while no kernel has a half version.</summary>
    private KernelVersions? HalfVariant(bool half)
    {
        if (half) return KernelVersions.Default;
        try
        {
            return _cuda!.Versions.WithHalfPrecision();
        }
        catch (DiffusionException)
        {
            return null;
        }
    }

    private GpuBackend Variant(KernelVersions versions)
    {
        if (_variants.TryGetValue(versions, out var backend)) return backend;
        if (_cuda!.IsEmulated) return _variants[versions] = GpuBackend.CreateEmulated(versions);
        if (!GpuBackend.TryCreateCuda(out var created, out string reason, versions: versions))
            throw new DiffusionException($"could not open a second CUDA backend for kernel versions {versions}: {reason}");
        return _variants[versions] = created!;
    }
}

/// <summary>
/// One benchmarked op on one named shape. Inputs are drawn from a generator seeded by the shape's name, so every
/// backend sees the same numbers; <see cref="Prepare"/> uploads <c>copies</c> input/output sets so timed runs can
/// rotate through more memory than the GPU's L2 cache holds.
/// </summary>
internal abstract class BenchCase(string op, string name)
{
    /// <summary>Inputs are rotated until the working set reaches this, so timings are not L2-cache hits.</summary>
    private const long RotationBytes = 128L << 20;

    public string Op { get; } = op;

    public string Name { get; } = name;

    public abstract IReadOnlyDictionary<string, object> Parameters { get; }

    /// <summary>Floating-point operations of one run (multiply-add = 2); 0 for memory-bound ops.</summary>
    public abstract double Flops(int batch);

    /// <summary>Minimum bytes one run must move to and from device memory.</summary>
    public abstract double Bytes(int batch);

    /// <summary>True when % of peak is measured against arithmetic throughput rather than memory bandwidth.</summary>
    public virtual bool ComputeBound => false;

    /// <summary>‖ours − CPU‖ / ‖CPU‖ allowed. Both sides round in float32: ~1e-6 is honest, an indexing slip is ~1.</summary>
    public virtual double Tolerance(bool half) => half ? 3e-3 : 2e-5;

    public virtual bool Checked => true;

    public virtual bool CudaOnly => false;

    /// <summary>The batch the result check runs at (smaller for whole-network cases, whose CPU reference is slow).</summary>
    public virtual int CheckBatch(int batch) => batch;

    public virtual int Copies(int batch) => (int)Math.Clamp((RotationBytes + (long)Bytes(batch) - 1) / Math.Max(1, (long)Bytes(batch)), 1, 64);

    public abstract BenchRun Prepare(IBackend backend, int batch, int copies);

    protected Random Rng() => new((int)(SyntheticWeights.Fnv1a64(Name) & 0x7FFFFFFF));

    protected static float[] Uniform(Random rng, long count, float scale = 1f)
    {
        var values = new float[count];
        for (long i = 0; i < count; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return values;
    }

    /// <summary>Uploads <paramref name="copies"/> copies of <paramref name="data"/> at distinct addresses.</summary>
    protected static DeviceTensor[] Copies(IBackend backend, BenchRun run, float[] data, int copies, params int[] shape) =>
        Enumerable.Range(0, copies).Select(_ => run.Own(backend.Upload(data, shape))).ToArray();

    protected static DeviceTensor[] Outputs(IBackend backend, BenchRun run, int copies, params int[] shape) =>
        Enumerable.Range(0, copies).Select(_ => run.Own(backend.Allocate(shape))).ToArray();
}

/// <summary>A prepared case: what one timed iteration issues, and where copy 0 leaves its result.</summary>
internal sealed class BenchRun : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    public Action<int> Issue { get; set; } = _ => { };

    public DeviceTensor Output { get; set; } = null!;

    public T Own<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
        _owned.Clear();
    }
}

/// <summary>A case whose shape, costs and tolerance are the library's <see cref="OpShape"/> (shared with the tests).</summary>
internal abstract class ShapeCase<TShape>(string op, TShape shape) : BenchCase(op, shape.Name) where TShape : OpShape
{
    protected TShape Shape { get; } = shape;

    public override IReadOnlyDictionary<string, object> Parameters => Shape.Parameters;

    public override bool ComputeBound => Shape.ComputeBound;

    public override double Flops(int batch) => Shape.Flops(batch);

    public override double Bytes(int batch) => Shape.Bytes(batch);

    /// <summary>Twice the op's float64 tolerance: here both sides, backend and CPU reference, round.</summary>
    public override double Tolerance(bool half) => half ? OpTolerance.Half : 2 * Shape.Tolerance;
}

internal sealed class ConvCase(Conv2dShape shape) : ShapeCase<Conv2dShape>("conv", shape)
{
    public override BenchRun Prepare(IBackend backend, int batch, int copies)
    {
        var (spec, size) = (Shape.Spec, Shape.Size);
        var rng = Rng();
        int o = spec.OutputSize(size);
        float[] w = Uniform(rng, (long)spec.OutChannels * spec.InChannels * spec.Kernel * spec.Kernel,
            1f / MathF.Sqrt(spec.InChannels * spec.Kernel * spec.Kernel));
        float[] bias = Uniform(rng, spec.OutChannels, 0.1f);
        float[] x = Uniform(rng, (long)batch * spec.InChannels * size * size);
        var run = new BenchRun();
        var weights = run.Own(backend.PrepareConv2d(spec, w, bias));
        var xs = Copies(backend, run, x, copies, batch, spec.InChannels, size, size);
        var ys = Outputs(backend, run, copies, batch, spec.OutChannels, o, o);
        run.Issue = i => backend.Conv2d(xs[i % copies], weights, ys[i % copies]);
        run.Output = ys[0];
        return run;
    }
}

internal sealed class GroupNormCase(GroupNormShape shape) : ShapeCase<GroupNormShape>("group_norm", shape)
{
    public override BenchRun Prepare(IBackend backend, int batch, int copies)
    {
        var (channels, size) = (Shape.Channels, Shape.Size);
        var rng = Rng();
        // An offset mean, as real activations have, so a one-pass variance would show its cancellation error.
        float[] x = Uniform(rng, (long)batch * channels * size * size).Select(v => v + 3f).ToArray();
        var run = new BenchRun();
        var gamma = run.Own(backend.Upload(Uniform(rng, channels, 0.25f).Select(v => v + 1f).ToArray(), channels));
        var beta = run.Own(backend.Upload(Uniform(rng, channels, 0.25f), channels));
        var xs = Copies(backend, run, x, copies, batch, channels, size, size);
        var ys = Outputs(backend, run, copies, batch, channels, size, size);
        run.Issue = i => backend.GroupNorm(xs[i % copies], gamma, beta, Shape.Groups, Shape.Eps, Shape.Silu, ys[i % copies]);
        run.Output = ys[0];
        return run;
    }
}

internal sealed class AttentionCase(AttentionShape shape) : ShapeCase<AttentionShape>("attention", shape)
{
    public override BenchRun Prepare(IBackend backend, int batch, int copies)
    {
        var (channels, heads, size) = (Shape.Channels, Shape.Heads, Shape.Size);
        float[] qkv = Uniform(Rng(), (long)batch * 3 * channels * size * size);
        var run = new BenchRun();
        var qs = Copies(backend, run, qkv, copies, batch, 3 * channels, size, size);
        var ys = Outputs(backend, run, copies, batch, channels, size, size);
        run.Issue = i => backend.Attention(qs[i % copies], ys[i % copies], heads);
        run.Output = ys[0];
        return run;
    }
}

internal sealed class LinearCase(LinearShape shape) : ShapeCase<LinearShape>("linear", shape)
{
    public override BenchRun Prepare(IBackend backend, int batch, int copies)
    {
        var (inFeatures, outFeatures, siluInput) = (Shape.InFeatures, Shape.OutFeatures, Shape.SiluInput);
        var rng = Rng();
        float[] w = Uniform(rng, (long)inFeatures * outFeatures, 1f / MathF.Sqrt(inFeatures));
        float[] bias = Uniform(rng, outFeatures, 0.1f);
        float[] x = Uniform(rng, (long)batch * inFeatures, 3f);
        var run = new BenchRun();
        // Rotating the weights too: they are what the op streams from memory.
        var weights = Enumerable.Range(0, copies).Select(_ => run.Own(backend.PrepareLinear(inFeatures, outFeatures, w, bias))).ToArray();
        var xs = Copies(backend, run, x, copies, batch, inFeatures);
        var ys = Outputs(backend, run, copies, batch, outFeatures);
        run.Issue = i => backend.Linear(xs[i % copies], weights[i % copies], ys[i % copies], siluInput);
        run.Output = ys[0];
        return run;
    }
}

internal sealed class SamplerCase(SamplerStepShape shape) : ShapeCase<SamplerStepShape>("sampler", shape)
{
    private static readonly SamplerStepCoefficients Coefficients = new(1.02f, -0.2f, 1f, 0.1f, 0.98f, 0.7f, 0.3f, 0.05f, -0.1f, 0.02f);

    public override BenchRun Prepare(IBackend backend, int batch, int copies)
    {
        var (channels, size) = (Shape.Channels, Shape.Size);
        var rng = Rng();
        int[] shape = [batch, channels, size, size];
        long count = (long)batch * channels * size * size;
        float[] sample = Uniform(rng, count, 3f), model = Uniform(rng, count), noise = Uniform(rng, count), previous = Uniform(rng, count);
        var run = new BenchRun();
        var samples = Copies(backend, run, sample, copies, shape);
        var models = Copies(backend, run, model, copies, shape);
        var noises = Copies(backend, run, noise, copies, shape);
        var previousX0 = Copies(backend, run, previous, copies, shape);
        var x0 = Outputs(backend, run, copies, shape);
        var next = Outputs(backend, run, copies, shape);
        run.Issue = i =>
        {
            int c = i % copies;
            backend.SamplerStep(samples[c], models[c], noises[c], previousX0[c], x0[c], Coefficients, next[c]);
        };
        run.Output = next[0];
        return run;
    }
}

/// <summary>
/// The whole DDPM CIFAR-10 U-Net forward (google/ddpm-cifar10-32's architecture, synthetic weights with seed 42 as
/// in weights/synthetic_weights.py) at timestep 500; the graph variant replays it as one captured CUDA graph.
/// </summary>
internal sealed class UNetCase(bool graph) : BenchCase(graph ? "unet_graph" : "unet", graph ? "DDPM CIFAR-10 U-Net, CUDA graph" : "DDPM CIFAR-10 U-Net forward")
{
    private const string ConfigJson = """
        {"_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": null, "block_out_channels": [128, 256, 256, 256],
         "center_input_sample": false, "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
         "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3, "layers_per_block": 2,
         "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
         "time_embedding_type": "positional", "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]}
        """;

    private static readonly Lazy<(UNet2DConfig Config, Dictionary<string, HostTensor> Weights)> Model = new(() =>
    {
        var config = UNet2DConfig.Parse(ConfigJson, "the built-in google/ddpm-cifar10-32 config");
        var weights = UNet2DLayout.ExpectedTensors(config)
            .ToDictionary(t => t.Name, t => new HostTensor(t.Shape, SyntheticWeights.Generate(t.Name, t.Shape, 42)));
        return (config, weights);
    });

    public override IReadOnlyDictionary<string, object> Parameters => new Dictionary<string, object>
    {
        ["config"] = "google/ddpm-cifar10-32", ["weightsSeed"] = 42, ["timestep"] = 500, ["h"] = 32, ["w"] = 32,
    };

    public override bool ComputeBound => true;

    public override bool CudaOnly => graph;

    /// <summary>The graph variant replays the same kernels; the eager row already checked their results.</summary>
    public override bool Checked => !graph;

    public override double Tolerance(bool half) => half ? 2e-2 : 1e-4;

    public override int CheckBatch(int batch) => Math.Min(batch, 2);

    public override int Copies(int batch) => 1; // 143 MB of weights already exceed any L2 cache

    public override double Flops(int batch) => batch * UNetFlops.PerImage(Model.Value.Config, 32, 32);

    public override double Bytes(int batch) => 4.0 * UNet2DLayout.ParameterCount(Model.Value.Config);

    public override BenchRun Prepare(IBackend backend, int batch, int copies)
    {
        var (config, weights) = Model.Value;
        var run = new BenchRun();
        var net = run.Own(UNet2D.Create(config, weights, backend));
        var x = run.Own(backend.Upload(Uniform(Rng(), (long)batch * 3 * 32 * 32), batch, 3, 32, 32));
        var y = run.Own(backend.Allocate(net.OutputShape(x.Shape)));
        float[] timestep = [500f];
        run.Output = y;
        if (graph && backend is GpuBackend gpu)
        {
            var captured = run.Own(gpu.CaptureGraph(() => net.Forward(x, timestep, y)));
            run.Issue = _ => captured.Replay(timestep, default);
        }
        else
        {
            run.Issue = _ => net.Forward(x, timestep, y);
        }
        return run;
    }
}

/// <summary>FLOPs of one U-Net forward, walked the way <see cref="UNet2D"/> builds the network (convs, attention, linears).</summary>
internal static class UNetFlops
{
    public static double PerImage(UNet2DConfig c, int height, int width)
    {
        var ch = c.BlockOutChannels;
        int levels = ch.Count, temb = c.TimeEmbeddingDim;
        double Conv(int cin, int cout, int k, int h, int w) => 2.0 * cin * cout * k * k * h * w;
        double Resnet(int cin, int cout, int h, int w) =>
            Conv(cin, cout, 3, h, w) + Conv(cout, cout, 3, h, w) + (cin != cout ? Conv(cin, cout, 1, h, w) : 0) + 2.0 * temb * cout;
        double Attention(int channels, int h, int w) =>
            Conv(channels, 3 * channels, 1, h, w) + 4.0 * h * w * h * w * channels + Conv(channels, channels, 1, h, w);

        double flops = 2.0 * ch[0] * temb + 2.0 * temb * temb + Conv(c.InChannels, ch[0], 3, height, width);
        var skips = new Stack<int>();
        skips.Push(ch[0]);
        int hh = height, ww = width, current = ch[0];
        for (int i = 0; i < levels; i++)
        {
            for (int j = 0; j < c.LayersPerBlock; j++)
            {
                flops += Resnet(current, ch[i], hh, ww) + (c.DownBlockHasAttention(i) ? Attention(ch[i], hh, ww) : 0);
                current = ch[i];
                skips.Push(current);
            }
            if (i < levels - 1)
            {
                hh /= 2;
                ww /= 2;
                flops += Conv(current, current, 3, hh, ww);
                skips.Push(current);
            }
        }
        flops += 2 * Resnet(current, current, hh, ww) + (c.AddAttention ? Attention(current, hh, ww) : 0);
        for (int i = 0; i < levels; i++)
        {
            int output = ch[levels - 1 - i];
            for (int j = 0; j < c.LayersPerBlock + 1; j++)
            {
                flops += Resnet(current + skips.Pop(), output, hh, ww) + (c.UpBlockHasAttention(i) ? Attention(output, hh, ww) : 0);
                current = output;
            }
            if (i < levels - 1)
            {
                hh *= 2;
                ww *= 2;
                flops += Conv(current, current, 3, hh, ww);
            }
        }
        return flops + Conv(ch[0], c.OutChannels, 3, height, width);
    }
}

/// <summary>The benchmarked shapes: every distinct op shape of the DDPM CIFAR-10 U-Net that matters for its time.</summary>
internal static class BenchCases
{
    public static readonly string[] OpNames = ["conv", "attention", "group_norm", "linear", "sampler", "unet", "unet_graph"];

    public static IReadOnlyList<BenchCase> All { get; } =
    [
        .. OpCases.Cifar10UNet.Select(Of),
        new UNetCase(graph: false),
        new UNetCase(graph: true),
    ];

    private static BenchCase Of(OpShape shape) => shape switch
    {
        Conv2dShape conv => new ConvCase(conv),
        AttentionShape attention => new AttentionCase(attention),
        GroupNormShape norm => new GroupNormCase(norm),
        LinearShape linear => new LinearCase(linear),
        SamplerStepShape step => new SamplerCase(step),
        _ => throw new ArgumentException($"no bench case for {shape}", nameof(shape)),
    };
}
