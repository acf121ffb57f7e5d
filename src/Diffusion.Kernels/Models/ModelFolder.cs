using Diffusion.Kernels.IO;

namespace Diffusion.Kernels.Models;

/// <summary>
/// Where the pieces of a diffusers model live. Accepts a UNet folder (<c>config.json</c> +
/// <c>diffusion_pytorch_model.safetensors</c>), a pipeline folder (<c>model_index.json</c>, <c>unet/</c>,
/// <c>scheduler/</c>), the older flat layout where the pipeline keeps the UNet files at its root, or a path to
/// the UNet's <c>config.json</c>. Opening reads and checks the config; the weights are only located.
/// </summary>
public sealed class ModelFolder
{
    public const string ConfigFileName = "config.json";
    public const string WeightsFileName = "diffusion_pytorch_model.safetensors";
    public const string PipelineIndexFileName = "model_index.json";
    public const string SchedulerConfigFileName = "scheduler_config.json";

    private ModelFolder(string root, string unetDirectory, string weightsPath, string? schedulerConfigPath, UNet2DConfig config)
    {
        RootPath = root;
        UNetDirectory = unetDirectory;
        ConfigPath = Path.Combine(unetDirectory, ConfigFileName);
        WeightsPath = weightsPath;
        SchedulerConfigPath = schedulerConfigPath;
        Config = config;
    }

    /// <summary>The folder the user named (the pipeline root for a pipeline).</summary>
    public string RootPath { get; }

    public string UNetDirectory { get; }

    public string ConfigPath { get; }

    public string WeightsPath { get; }

    /// <summary>The pipeline's scheduler config, or null when the model has none.</summary>
    public string? SchedulerConfigPath { get; }

    public UNet2DConfig Config { get; }

    public static ModelFolder Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        string root, unet;
        if (File.Exists(full))
        {
            if (!string.Equals(Path.GetFileName(full), ConfigFileName, StringComparison.Ordinal))
                throw new ModelConfigException(full, null, $"is a file; give a model folder or its UNet's {ConfigFileName}");
            unet = Path.GetDirectoryName(full)!;
            root = unet;
        }
        else if (Directory.Exists(full))
        {
            root = full;
            string nested = Path.Combine(full, "unet");
            if (File.Exists(Path.Combine(nested, ConfigFileName)))
                unet = nested;
            else if (File.Exists(Path.Combine(full, ConfigFileName)))
                unet = full;
            else if (File.Exists(Path.Combine(full, PipelineIndexFileName)))
                throw new ModelConfigException(full, null, $"is a pipeline folder without a UNet: neither unet/{ConfigFileName} nor {ConfigFileName} exists");
            else
                throw new ModelConfigException(full, null, $"is not a diffusers model folder: it has no {ConfigFileName}, unet/{ConfigFileName} or {PipelineIndexFileName}");
        }
        else
        {
            throw new ModelConfigException(full, null, "does not exist");
        }

        var config = UNet2DConfig.Load(Path.Combine(unet, ConfigFileName));
        return new ModelFolder(root, unet, FindWeights(unet), FindSchedulerConfig(root, unet), config);
    }

    private static string FindWeights(string unet)
    {
        // Path.Exists, not File.Exists: a folder, a FIFO or a dangling link in the weights' place is named as what
        // it is by CheckWeights, not reported as missing (or opened and waited on).
        string weights = Path.Combine(unet, WeightsFileName);
        if (Path.Exists(weights)) return CheckWeights(weights);
        // diffusers saves half-precision copies as a "variant" beside (or instead of) the full file.
        string fp16 = Path.Combine(unet, "diffusion_pytorch_model.fp16.safetensors");
        if (Path.Exists(fp16)) return CheckWeights(fp16);
        if (File.Exists(weights + ".index.json"))
            throw new ModelConfigException(weights, null, "is sharded into several files (an .index.json is present); sharded checkpoints are not supported");
        if (File.Exists(Path.Combine(unet, "diffusion_pytorch_model.bin")))
            throw new ModelConfigException(weights, null,
                "does not exist; the folder has only diffusion_pytorch_model.bin (PyTorch pickle), and only safetensors is supported: re-save it with safe_serialization=True");
        throw new ModelConfigException(weights, null, "does not exist");
    }

    /// <summary>
    /// The weights must be a readable regular file. A clone without Git LFS holds ~130-byte pointer files instead
    /// of the weights; saying so at open time beats a format error later.
    /// </summary>
    private static string CheckWeights(string weights)
    {
        const string prefix = "version https://git-lfs";
        try
        {
            using var stream = InputFile.OpenRead(weights);
            var head = new byte[prefix.Length];
            if (stream.Length < 1024 && stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) == head.Length
                && System.Text.Encoding.ASCII.GetString(head) == prefix)
            {
                throw new ModelConfigException(weights, null,
                    "is a Git LFS pointer, not the weights: the real file was not downloaded (run 'git lfs pull' in the model repository)");
            }
        }
        catch (UnusableFileException e)
        {
            throw new ModelConfigException(weights, null, e.Problem, e);
        }
        catch (IOException e)
        {
            throw new ModelConfigException(weights, null, $"cannot be read: {e.Message}", e);
        }
        return weights;
    }

    /// <summary>Pipelines keep it in scheduler/; flat repositories beside the UNet; a UNet inside a pipeline in ../scheduler.</summary>
    private static string? FindSchedulerConfig(string root, string unet)
    {
        string[] candidates =
        [
            Path.Combine(root, "scheduler", SchedulerConfigFileName),
            Path.Combine(root, SchedulerConfigFileName),
            Path.Combine(unet, "..", "scheduler", SchedulerConfigFileName),
        ];
        // Path.Exists: a folder in the config's place is refused when it is read, not taken to mean "no config".
        return candidates.Where(Path.Exists).Select(Path.GetFullPath).FirstOrDefault();
    }
}
