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

    /// <summary>Without --out each run writes the first free name of generated.png, generated-2.png, ...</summary>
    private const string DefaultOutput = "generated.png";

    /// <summary>
    /// Shown under "Examples:" in <c>diffuse generate --help</c>; a test runs each one exactly as written, so every
    /// example works on the embedded model as shown.
    /// </summary>
    internal static readonly string[] Examples =
    [
        "diffuse generate",
        "diffuse generate --scheduler dpm++2m --steps 20 --seed 3 --out clothes.png",
        "diffuse generate --scheduler ddpm --steps 100 --batch 4 --seed 7 --scale 2 --out ddpm.png --save-tensor ddpm.safetensors",
    ];

    public static Command Create()
    {
        var model = CliOptions.InputPath("--model", "FOLDER", "diffusers UNet or pipeline folder (default: the embedded Fashion-MNIST model)");
        var sampler = CliOptions.Choice("--scheduler", "sampler (default: ddim)",
            [.. Enum.GetValues<SamplerKind>().Select(kind => (Scheduler.NameOf(kind), kind))]);
        var steps = CliOptions.WholeNumber("--steps", "N", "sampling steps, at most the model's num_train_timesteps (default: ddpm all of them, ddim 50, dpm++2m 20, euler-a 30)", 1);
        var eta = CliOptions.Number("--eta", "E", "DDIM η: 0 deterministic (default) … 1 DDPM-like", 0, 1);
        var seed = CliOptions.Seed("random seed (default: a fresh one, printed so the run can be repeated)");
        var rng = CliOptions.Choice("--rng", "what the seed drives: torch gives the noise of diffusers with torch.manual_seed(S); " +
            "splitmix is our own stream, which the first image of a batch shares with a run of one (default: torch)",
            [.. Enum.GetValues<RngKind>().Select(kind => (NoiseSource.NameOf(kind), kind))]);
        var from = CliOptions.InputPath("--from", "IMAGE.png", "take every option not given here from the metadata of an image diffuse wrote");
        var batch = CliOptions.WholeNumber("--batch", "B", $"images to generate, tiled into a grid (default: {DefaultModelBatch} with the embedded model, else 1); " +
            $"large batches run in chunks sized to memory", 1, Pipeline.MaxBatch);
        var device = CliOptions.Device();
        var noise = CliOptions.InputPath("--noise", "FILE.safetensors", "initial unit-variance noise (B, C, H, W): tensor 'sample' or the file's only tensor");
        var saveTensor = CliOptions.OutputFile("--save-tensor", ".safetensors", "also write the final samples (B, C, H, W), float32, as tensor 'sample' of this file");
        var output = CliOptions.OutputFile("--out", ".png", $"PNG to write (default: {DefaultOutput}, or generated-2.png, generated-3.png, ... when it exists)", extensionRequired: true);
        var scale = CliOptions.WholeNumber("--scale", "N", "enlarge each image N× (nearest neighbour) in the PNG (default: at least 128 pixels wide; 1 keeps the model's size)", 1, ImageGrid.MaxScale);
        var force = CliOptions.Force();
        var verbose = CliOptions.Verbose();

        var command = new Command("generate", "Generate images from noise with a diffusion U-Net.\n\nExamples:\n" +
            string.Join("\n", Examples.Select(e => "  " + e)))
        {
            model, sampler, steps, eta, seed, rng, from, batch, device, noise, saveTensor, output, scale, force, verbose,
        };
        command.SetAction((parse, ct) => CliErrors.Run(parse.GetValue(verbose), () =>
        {
            // --from fills in what the command line leaves out; anything given here wins.
            var past = parse.GetValue(from) is { } image ? ReadMetadata(image) : null;
            var request = new Request(
                parse.GetValue(model) ?? past?.ModelArgument, parse.GetValue(sampler) ?? past?.Sampler ?? SamplerKind.Ddim,
                parse.GetValue(steps) ?? past?.Metadata.Steps, parse.GetValue(eta) ?? past?.Metadata.Eta ?? 0,
                parse.GetValue(seed) ?? past?.Metadata.Seed, parse.GetValue(batch) ?? past?.Metadata.BatchSize,
                parse.GetValue(device) ?? DeviceKind.Auto, parse.GetValue(noise) ?? past?.Metadata.NoiseFile,
                parse.GetValue(saveTensor), parse.GetValue(output), parse.GetValue(scale) ?? past?.Metadata.Scale,
                parse.GetValue(force), parse.GetValue(verbose))
            {
                Rng = parse.GetValue(rng) ?? past?.Rng ?? RngKind.Torch,
            };
            return Generate(request, Console.Error, ct);
        }));
        return command;
    }

    /// <summary>The parsed command line; null means "not given".</summary>
    public sealed record Request(
        string? Model, SamplerKind Sampler, int? Steps, double Eta, ulong? Seed, int? Batch, DeviceKind Device,
        string? Noise, string? SaveTensor, string? Out, int? Scale, bool Force, bool Verbose)
    {
        public RngKind Rng { get; init; } = RngKind.Torch;
    }

    /// <summary>What the image metadata says, in the command line's terms; the embedded model is "default" there.</summary>
    private sealed record PastRun(ImageMetadata Metadata, string? ModelArgument, SamplerKind Sampler, RngKind? Rng);

    private static PastRun ReadMetadata(string path)
    {
        var metadata = ImageMetadata.FromTextChunks(PngText.Read(path), path)
            ?? throw new UsageException($"--from {path}: the image holds no diffuse metadata ('{ImageMetadata.JsonKeyword}' text chunk); it was not written by diffuse generate");
        if (!Scheduler.TryParseKind(metadata.Scheduler, out var sampler))
            throw new UsageException($"--from {path}: its scheduler '{metadata.Scheduler}' is not one of ddpm, ddim, dpm++2m, euler-a");
        RngKind? rng = null;
        if (metadata.Rng is { } name)
            rng = NoiseSource.TryParseKind(name, out var kind) ? kind : throw new UsageException($"--from {path}: its rng '{name}' is not one of torch, splitmix");
        return new PastRun(metadata, metadata.Model == DefaultModelName ? null : metadata.Model, sampler, rng);
    }

    /// <summary>How the metadata names the embedded model; a folder of that name is written as ./default.</summary>
    private const string DefaultModelName = "default";

    /// <summary>Runs the command; status, progress and errors (one line each) go to <paramref name="log"/>.</summary>
    public static int Run(Request request, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(log);
        return CliErrors.Execute(request.Verbose, () => Generate(request, log, cancellationToken), log);
    }

    private static int Generate(Request request, TextWriter log, CancellationToken cancellationToken)
    {
        // Everything that can be refused is checked before the device is opened and the model loaded: outputs,
        // the noise file, the model's config, and the sampler's options against the scheduler config.
        string outPath = request.Out ?? FirstFreeName(DefaultOutput);
        OutputFiles.EnsureDistinct(("--out", outPath), ("--save-tensor", request.SaveTensor));
        OutputFiles.EnsureWritable("--out", outPath, request.Force, log);
        if (request.SaveTensor is { } tensorPath) OutputFiles.EnsureWritable("--save-tensor", tensorPath, request.Force, log);
        var initialNoise = request.Noise is { } noisePath ? SampleFiles.Read(noisePath) : null;
        if (initialNoise is not null && request.Batch is { } b && b != initialNoise.Shape[0])
            throw new UsageException($"--batch {b} disagrees with the {initialNoise.Shape[0]} samples in --noise {request.Noise}");

        string modelPath = request.Model ?? DefaultModel.Locate(out var searched) ?? throw new UsageException(
            "no --model given and no default model found (looked in " + string.Join(", ", searched) +
            "); pass --model, set " + DefaultModel.EnvironmentVariable + ", or export one with weights/train_default.py");
        var folder = ModelFolder.Open(modelPath);
        if (folder.Config.OutChannels != folder.Config.InChannels)
            throw new UsageException($"{folder.ConfigPath}: the model predicts {folder.Config.OutChannels} channels for " +
                $"{folder.Config.InChannels}-channel samples (a learned variance); only ε, x0 or v prediction models can sample");
        if (initialNoise is not null && initialNoise.Shape[1] != folder.Config.InChannels)
            throw new UsageException($"--noise {request.Noise} holds {initialNoise.Shape[1]}-channel samples; the model takes {folder.Config.InChannels} channels");
        var schedulerConfig = folder.SchedulerConfigPath is { } configPath ? SchedulerConfig.Load(configPath) : SchedulerConfig.Default;
        ulong seed = request.Seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        var settings = new SamplingSettings
        {
            Sampler = request.Sampler,
            SchedulerConfig = schedulerConfig,
            Steps = request.Steps,
            Eta = request.Eta,
            Seed = seed,
            Rng = request.Rng,
            Batch = request.Batch ?? (request.Model is null ? DefaultModelBatch : 1),
            InitialNoise = initialNoise,
        };
        // The library's own checks (batch limit, steps against num_train_timesteps, the sampler's fit to the
        // scheduler config), made here so they too come before the device is opened.
        var scheduler = Pipeline.Validate(settings);
        bool drawsStepNoise = Enumerable.Range(0, scheduler.StepCount).Any(i => scheduler.Step(i).NeedsNoise);

        if (folder.SchedulerConfigPath is null)
            log.WriteLine($"{folder.RootPath} has no scheduler_config.json; using diffusers' DDPMScheduler defaults");
        if (request.Eta != 0 && request.Sampler != SamplerKind.Ddim)
            log.WriteLine($"note: --eta applies to ddim only; {Scheduler.NameOf(request.Sampler)} ignores it");
        // With --noise the seed matters only if the sampler draws fresh noise at some step.
        bool seedMatters = initialNoise is null || drawsStepNoise;
        if (!seedMatters && request.Seed is not null)
            log.WriteLine($"note: --seed has no effect: --noise gives the initial noise and {Scheduler.NameOf(request.Sampler)} draws no other");

        using var backend = CliOptions.CreateBackend(request.Device, request.Verbose, log);
        using var denoiser = UNet2D.Load(folder, backend, cancellationToken);
        var options = new GenerateOptions
        {
            Model = denoiser,
            Sampler = settings.Sampler,
            SchedulerConfig = settings.SchedulerConfig,
            Steps = settings.Steps,
            Eta = settings.Eta,
            Seed = settings.Seed,
            Rng = settings.Rng,
            Batch = settings.Batch,
            InitialNoise = settings.InitialNoise,
        };
        var (_, height, width) = denoiser.SampleShape;
        // Refuses a batch that does not fit in memory (exit 6) before the sampling line, and says how it will run.
        var plan = Pipeline.PlanBatch(denoiser, initialNoise?.Shape[0] ?? options.Batch, initialNoise?.Shape[2] ?? height, initialNoise?.Shape[3] ?? width);
        string rngName = NoiseSource.NameOf(request.Rng);
        string noiseOrigin = initialNoise is null ? $"seed {seed}, rng {rngName}"
            : drawsStepNoise ? $"initial noise from {request.Noise}, seed {seed} for the noise of later steps, rng {rngName}"
            : $"initial noise from {request.Noise}";
        string chunks = plan.ChunkCount > 1 ? $", {plan.Batch} images in {plan.ChunkCount} chunks of up to {plan.ChunkSize}" : "";
        log.WriteLine($"sampling: {Scheduler.NameOf(request.Sampler)}, {scheduler.StepCount} steps, {noiseOrigin}{chunks}");

        var clock = Stopwatch.StartNew();
        bool terminal = ReferenceEquals(log, Console.Error) && !Console.IsErrorRedirected;
        var progress = new ProgressDisplay(log, terminal, terminal ? ProgressDisplay.ConsoleWidth() : int.MaxValue);
        var samples = Pipeline.Generate(options, progress, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();

        // The PNG and the tensor are committed together or not at all.
        var outputs = new List<OutputFile>();
        if (request.SaveTensor is { } savePath)
        {
            var metadata = new Dictionary<string, string>
            {
                ["model"] = folder.RootPath,
                ["scheduler"] = Scheduler.NameOf(request.Sampler),
                ["steps"] = scheduler.StepCount.ToString(CultureInfo.InvariantCulture),
                ["eta"] = request.Eta.ToString(CultureInfo.InvariantCulture),
            };
            if (seedMatters)
            {
                metadata["seed"] = seed.ToString(CultureInfo.InvariantCulture);
                metadata["rng"] = rngName;
            }
            outputs.Add(new(savePath, stream => SafetensorsWriter.WriteTo(stream, [new("sample", samples)], metadata)));
        }
        int scale = request.Scale ?? ImageGrid.ReadableScale(samples.Shape[2], samples.Shape[3]);
        int count = samples.Shape[0];
        var imageMetadata = new ImageMetadata
        {
            Model = request.Model is null ? DefaultModelName : request.Model == DefaultModelName ? "./" + DefaultModelName : request.Model,
            Scheduler = Scheduler.NameOf(request.Sampler),
            Steps = scheduler.StepCount,
            Eta = request.Eta,
            Seed = seedMatters ? seed : null,
            Rng = seedMatters ? rngName : null,
            NoiseFile = request.Noise,
            Width = samples.Shape[3],
            Height = samples.Shape[2],
            BatchSize = count,
            BatchIndex = count == 1 ? 0 : null,
            Grid = count == 1 ? null : ImageGrid.Layout(count),
            Scale = scale,
        };
        outputs.Add(new(outPath, stream => stream.Write(Png.Encode(ImageGrid.FromSamples(samples, scale), imageMetadata.ToTextChunks()))));
        OutputFiles.WriteAll(outputs, request.Force, cancellationToken);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"wrote {outPath}: {samples.Shape[0]} image(s) of {samples.Shape[1]}×{samples.Shape[2]}×{samples.Shape[3]} in {clock.Elapsed.TotalSeconds:0.0} s"));
        return ExitCodes.Success;
    }

    /// <summary>
    /// <paramref name="name"/>, or name-2, name-3, ... (the first that does not exist), so the README's first command
    /// and its repeats each keep their image: a run with a fresh seed is worth keeping, and nothing is overwritten
    /// that --out did not name.
    /// </summary>
    private static string FirstFreeName(string name)
    {
        if (!File.Exists(name) && !Directory.Exists(name)) return name;
        string stem = Path.GetFileNameWithoutExtension(name), extension = Path.GetExtension(name);
        for (int i = 2; i < 100_000; i++)
        {
            string candidate = $"{stem}-{i}{extension}";
            if (!File.Exists(candidate) && !Directory.Exists(candidate)) return candidate;
        }
        throw new UsageException($"{name} and its numbered successors up to {stem}-99999{extension} all exist; pass --out");
    }
}
