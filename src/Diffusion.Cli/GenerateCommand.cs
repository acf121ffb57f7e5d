using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Diffusion.Kernels;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Cli;

/// <summary>
/// <c>diffuse generate</c>: noise → image. Loads the model and its scheduler config, runs the chosen sampler with
/// a progress display, and writes the PNG (and optionally the raw tensor) only once every step has finished, each
/// file atomically, so Ctrl-C or an error never leaves a partial file behind.
/// </summary>
public static class GenerateCommand
{
    /// <summary>The embedded default model is tiny, so without --model we show a grid.</summary>
    private const int DefaultModelBatch = 16;

    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "diffusers UNet or pipeline folder (default: the embedded Fashion-MNIST model)" };
        var sampler = new Option<SamplerKind>("--scheduler")
        {
            Description = "sampler: ddpm, ddim, dpm++2m or euler-a",
            DefaultValueFactory = _ => SamplerKind.Ddim,
            CustomParser = result =>
            {
                string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
                if (Scheduler.TryParseKind(text, out var kind)) return kind;
                result.AddError($"--scheduler: '{text}' is not one of ddpm, ddim, dpm++2m, euler-a");
                return SamplerKind.Ddim;
            },
        };
        var steps = new Option<int?>("--steps") { Description = "sampling steps (default: ddpm all training steps, ddim 50, dpm++2m 20, euler-a 30)" };
        var eta = new Option<double>("--eta") { Description = "DDIM η: 0 deterministic (default) … 1 DDPM-like" };
        var seed = new Option<ulong?>("--seed") { Description = "random seed (default: a fresh one, printed so the run can be repeated)" };
        var batch = new Option<int?>("--batch") { Description = $"images to generate, tiled into a grid (default: {DefaultModelBatch} with the embedded model, else 1)" };
        var device = new Option<DeviceKind>("--device")
        {
            Description = "where to run: cpu, cuda, or auto (CUDA when a GPU is usable, else CPU)",
            DefaultValueFactory = _ => DeviceKind.Auto,
            CustomParser = result =>
            {
                string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
                if (Enum.TryParse<DeviceKind>(text, ignoreCase: true, out var kind)) return kind;
                result.AddError($"--device: '{text}' is not one of cpu, cuda, auto");
                return DeviceKind.Auto;
            },
        };
        var noise = new Option<string?>("--noise") { Description = "safetensors file with the initial unit-variance noise (B, C, H, W): tensor 'sample' or its only tensor" };
        var saveTensor = new Option<string?>("--save-tensor") { Description = "also write the final samples (B, C, H, W), float32, as tensor 'sample' of this safetensors file" };
        var output = new Option<string>("--out") { Description = "PNG to write", DefaultValueFactory = _ => "generated.png" };
        var force = new Option<bool>("--force") { Description = "overwrite output files that already exist" };
        var verbose = new Option<bool>("--verbose") { Description = "print stack traces with errors" };

        var command = new Command("generate", "Generate images from noise with a diffusion U-Net.")
        {
            model, sampler, steps, eta, seed, batch, device, noise, saveTensor, output, force, verbose,
        };
        // Task.Run, not Task.FromResult: System.CommandLine installs its Ctrl-C handler only after the action has
        // returned its task, so a body that ran synchronously could never see the cancellation.
        command.SetAction((parse, ct) => Task.Run(() => Run(new Request(
            parse.GetValue(model), parse.GetValue(sampler), parse.GetValue(steps), parse.GetValue(eta), parse.GetValue(seed),
            parse.GetValue(batch), parse.GetValue(device), parse.GetValue(noise), parse.GetValue(saveTensor),
            parse.GetValue(output)!, parse.GetValue(force), parse.GetValue(verbose)), Console.Error, ct)));
        return command;
    }

    /// <summary>The parsed command line; null means "not given".</summary>
    public sealed record Request(
        string? Model, SamplerKind Sampler, int? Steps, double Eta, ulong? Seed, int? Batch, DeviceKind Device,
        string? Noise, string? SaveTensor, string Out, bool Force, bool Verbose);

    /// <summary>Runs the command; status, progress and errors (one line each) go to <paramref name="log"/>.</summary>
    public static int Run(Request request, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(log);
        try
        {
            return Generate(request, log, cancellationToken);
        }
        catch (Exception e)
        {
            int code = ExitCodeFor(e);
            log.WriteLine(code == ExitCodes.Cancelled ? "diffuse: cancelled; nothing was written" : $"diffuse: {e.Message}");
            if (request.Verbose) log.WriteLine(e);
            else if (code == ExitCodes.Internal) log.WriteLine("diffuse: this is a bug; run with --verbose for the stack trace");
            return code;
        }
    }

    private static int Generate(Request request, TextWriter log, CancellationToken cancellationToken)
    {
        // Everything that can be refused is checked before the long part starts.
        EnsureWritable(request.Out, request.Force);
        if (request.SaveTensor is { } tensorPath) EnsureWritable(tensorPath, request.Force);
        var initialNoise = request.Noise is { } noisePath ? ReadNoise(noisePath) : null;
        if (initialNoise is not null && request.Batch is { } b && b != initialNoise.Shape[0])
            throw new UsageException($"--batch {b} disagrees with the {initialNoise.Shape[0]} samples in --noise {request.Noise}");

        string modelPath = request.Model ?? DefaultModel.Locate(out var searched) ?? throw new UsageException(
            "no --model given and no default model found (looked in " + string.Join(", ", searched) +
            "); pass --model, set " + DefaultModel.EnvironmentVariable + ", or export one with weights/train_default.py");
        var folder = ModelFolder.Open(modelPath);
        var schedulerConfig = folder.SchedulerConfigPath is { } configPath ? SchedulerConfig.Load(configPath) : SchedulerConfig.Default;
        if (folder.SchedulerConfigPath is null)
            log.WriteLine($"{folder.RootPath} has no scheduler_config.json; using diffusers' DDPMScheduler defaults");
        if (request.Eta != 0 && request.Sampler != SamplerKind.Ddim)
            log.WriteLine($"note: --eta applies to ddim only; {Scheduler.NameOf(request.Sampler)} ignores it");
        ulong seed = request.Seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

        using var backend = BackendFactory.Create(request.Device, out string choice);
        log.WriteLine($"device: {choice}");
        var denoiser = LoadDenoiser(folder, backend);

        var options = new GenerateOptions
        {
            Model = denoiser,
            Sampler = request.Sampler,
            SchedulerConfig = schedulerConfig,
            Steps = request.Steps,
            Eta = request.Eta,
            Seed = seed,
            Batch = request.Batch ?? (request.Model is null ? DefaultModelBatch : 1),
            InitialNoise = initialNoise,
        };
        int stepCount = options.Steps ?? Scheduler.DefaultSteps(options.Sampler, schedulerConfig);
        log.WriteLine($"sampling: {Scheduler.NameOf(request.Sampler)}, {stepCount} steps, seed {seed}");

        var clock = Stopwatch.StartNew();
        var samples = Pipeline.Generate(options, new ProgressDisplay(log, interactive: ReferenceEquals(log, Console.Error) && !Console.IsErrorRedirected), cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();

        if (request.SaveTensor is { } savePath)
        {
            SafetensorsWriter.Write(savePath, [new("sample", samples)], new Dictionary<string, string>
            {
                ["model"] = folder.RootPath,
                ["scheduler"] = Scheduler.NameOf(request.Sampler),
                ["steps"] = stepCount.ToString(CultureInfo.InvariantCulture),
                ["eta"] = request.Eta.ToString(CultureInfo.InvariantCulture),
                ["seed"] = seed.ToString(CultureInfo.InvariantCulture),
            });
        }
        Png.Save(request.Out, samples, overwrite: request.Force);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {request.Out}: {samples.Shape[0]} image(s) of {samples.Shape[1]}×{samples.Shape[2]}×{samples.Shape[3]} in {clock.Elapsed.TotalSeconds:0.0} s"));
        return ExitCodes.Success;
    }

    /// <summary>The U-Net behind the sampler's <see cref="IDenoiser"/> seam.</summary>
    private static IDenoiser LoadDenoiser(ModelFolder folder, IBackend backend) =>
        throw new DiffusionException($"{folder.RootPath}: this build has no U-Net forward on {backend.Name} yet (Models/UNet2D is not merged)");

    private static HostTensor ReadNoise(string path)
    {
        using var file = SafetensorsFile.Open(path);
        string name = file.Contains("sample") ? "sample"
            : file.Tensors.Count == 1 ? file.Tensors[0].Name
            : throw new SafetensorsFormatException(path, $"expected a tensor named 'sample' or a single tensor, found {file.Tensors.Count}");
        var tensor = file.ReadTensor(name);
        if (tensor.Rank != 4)
            throw new SafetensorsFormatException(path, $"tensor '{name}' must have shape (B, C, H, W), got ({string.Join(", ", tensor.Shape)})");
        return tensor;
    }

    private static void EnsureWritable(string path, bool force)
    {
        if (File.Exists(path) && !force) throw new OutputExistsException(path);
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null && !Directory.Exists(directory))
            throw new UsageException($"{path}: the folder {directory} does not exist");
    }

    internal static int ExitCodeFor(Exception e) => e switch
    {
        OperationCanceledException => ExitCodes.Cancelled,
        UsageException or SamplingOptionsException => ExitCodes.Usage,
        OutputExistsException => ExitCodes.OutputExists,
        ModelConfigException => ExitCodes.BadModel,
        NonFiniteSampleException => ExitCodes.NonFinite,
        InsufficientMemoryException or OutOfMemoryException => ExitCodes.OutOfMemory,
        DiffusionException => ExitCodes.BadInput,
        IOException or UnauthorizedAccessException => ExitCodes.BadInput,
        _ => ExitCodes.Internal,
    };

    private sealed class UsageException(string message) : DiffusionException(message);

    private sealed class OutputExistsException(string path)
        : DiffusionException($"{path} already exists; pass --force to overwrite it");
}
