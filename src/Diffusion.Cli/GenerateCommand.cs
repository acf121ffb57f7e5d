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
        var device = CliOptions.Device();
        var noise = new Option<string?>("--noise") { Description = "safetensors file with the initial unit-variance noise (B, C, H, W): tensor 'sample' or its only tensor" };
        var saveTensor = new Option<string?>("--save-tensor") { Description = "also write the final samples (B, C, H, W), float32, as tensor 'sample' of this safetensors file" };
        var output = new Option<string>("--out") { Description = "PNG to write", DefaultValueFactory = _ => "generated.png" };
        var scale = new Option<int?>("--scale") { Description = "enlarge each image N× (nearest neighbour) in the PNG (default: at least 128 pixels wide; 1 keeps the model's size)" };
        var force = CliOptions.Force();
        var verbose = CliOptions.Verbose();

        var command = new Command("generate", "Generate images from noise with a diffusion U-Net.")
        {
            model, sampler, steps, eta, seed, batch, device, noise, saveTensor, output, scale, force, verbose,
        };
        command.SetAction((parse, ct) => CliErrors.Run(parse.GetValue(verbose), () => Generate(new Request(
            parse.GetValue(model), parse.GetValue(sampler), parse.GetValue(steps), parse.GetValue(eta), parse.GetValue(seed),
            parse.GetValue(batch), parse.GetValue(device), parse.GetValue(noise), parse.GetValue(saveTensor),
            parse.GetValue(output)!, parse.GetValue(scale), parse.GetValue(force), parse.GetValue(verbose)), Console.Error, ct)));
        return command;
    }

    /// <summary>The parsed command line; null means "not given".</summary>
    public sealed record Request(
        string? Model, SamplerKind Sampler, int? Steps, double Eta, ulong? Seed, int? Batch, DeviceKind Device,
        string? Noise, string? SaveTensor, string Out, int? Scale, bool Force, bool Verbose);

    /// <summary>Runs the command; status, progress and errors (one line each) go to <paramref name="log"/>.</summary>
    public static int Run(Request request, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(log);
        return CliErrors.Execute(request.Verbose, () => Generate(request, log, cancellationToken), log);
    }

    private static int Generate(Request request, TextWriter log, CancellationToken cancellationToken)
    {
        // Everything that can be refused is checked before the long part starts.
        OutputFiles.EnsureWritable(request.Out, request.Force);
        if (request.SaveTensor is { } tensorPath) OutputFiles.EnsureWritable(tensorPath, request.Force);
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
        if (folder.Config.OutChannels != folder.Config.InChannels)
            throw new UsageException($"{folder.ConfigPath}: the model predicts {folder.Config.OutChannels} channels for " +
                $"{folder.Config.InChannels}-channel samples (a learned variance); only ε, x0 or v prediction models can sample");
        using var denoiser = UNet2D.Load(folder, backend, cancellationToken);

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
        Png.Save(request.Out, samples, overwrite: request.Force,
            scale: request.Scale ?? ImageGrid.ReadableScale(samples.Shape[2], samples.Shape[3]));
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {request.Out}: {samples.Shape[0]} image(s) of {samples.Shape[1]}×{samples.Shape[2]}×{samples.Shape[3]} in {clock.Elapsed.TotalSeconds:0.0} s"));
        return ExitCodes.Success;
    }

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
}
