using System.Text.RegularExpressions;
using Diffusion.Kernels.IO;

namespace Diffusion.Kernels.Models;

/// <summary>
/// The weights of a <c>UNet2DModel</c>, widened to float32 and keyed by their current diffusers names. Loading
/// binds the file to the config first, from the header alone: every expected tensor present with its shape and
/// nothing else. Only then is any data read, so a wrong file fails fast and reports all its problems at once.
/// </summary>
public sealed partial class UNet2DCheckpoint
{
    private UNet2DCheckpoint(string weightsPath, UNet2DConfig config, Dictionary<string, HostTensor> tensors,
        Dictionary<string, SafetensorsDType> sourceDTypes)
    {
        WeightsPath = weightsPath;
        Config = config;
        Tensors = tensors;
        SourceDTypes = sourceDTypes;
    }

    public string WeightsPath { get; }

    public UNet2DConfig Config { get; }

    public IReadOnlyDictionary<string, HostTensor> Tensors { get; }

    /// <summary>Each tensor's dtype in the file, before widening.</summary>
    public IReadOnlyDictionary<string, SafetensorsDType> SourceDTypes { get; }

    public long ParameterCount => Tensors.Values.Sum(t => (long)t.Data.Length);

    public HostTensor this[string name] =>
        Tensors.TryGetValue(name, out var tensor)
            ? tensor
            : throw new ModelConfigException(WeightsPath, null, $"has no parameter named '{name}'");

    /// <summary>
    /// Loads a folder's weights. A weights file that is not valid safetensors makes the folder unusable, so it
    /// is reported as a <see cref="ModelConfigException"/> (the model is at fault, not an input of the run).
    /// </summary>
    public static UNet2DCheckpoint Load(ModelFolder folder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(folder);
        try
        {
            return Load(folder.WeightsPath, folder.Config, cancellationToken);
        }
        catch (SafetensorsFormatException e)
        {
            throw new ModelConfigException(e.FilePath, null, e.Problem, e);
        }
    }

    public static UNet2DCheckpoint Load(string weightsPath, UNet2DConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(weightsPath);
        ArgumentNullException.ThrowIfNull(config);
        using var file = SafetensorsFile.Open(weightsPath);
        var binding = Bind(file, config);

        var tensors = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
        var dtypes = new Dictionary<string, SafetensorsDType>(StringComparer.Ordinal);
        foreach (var (name, shape, stored) in binding)
        {
            cancellationToken.ThrowIfCancellationRequested();
            tensors[name] = new HostTensor(shape, file.ReadFloat32(stored.Name));
            dtypes[name] = stored.DType;
        }
        return new UNet2DCheckpoint(weightsPath, config, tensors, dtypes);
    }

    /// <summary>
    /// Pairs each expected parameter with the stored tensor that provides it, or throws one
    /// <see cref="CheckpointMismatchException"/> listing every problem.
    /// </summary>
    private static List<(string Name, int[] Shape, SafetensorsTensorInfo Stored)> Bind(SafetensorsFile file, UNet2DConfig config)
    {
        var expected = UNet2DLayout.ExpectedTensors(config);
        var stored = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var wrong = new List<string>();
        // Grouped by kind so the report reads as "what is missing, what is wrong, what is extra".
        List<string> missingLines = [], wrongLines = [], extraLines = [];
        foreach (var info in file.Tensors)
        {
            string name = CanonicalName(info.Name);
            if (stored.TryGetValue(name, out var other))
            {
                wrong.Add(name);
                extraLines.Add($"duplicate: '{Shown(other.Name)}' and '{Shown(info.Name)}' both provide {Shown(name)}");
            }
            else
            {
                stored[name] = info;
            }
        }

        var expectedNames = new HashSet<string>(expected.Select(e => e.Name), StringComparer.Ordinal);
        foreach (var (name, info) in stored)
        {
            if (!expectedNames.Contains(name))
            {
                unexpected.Add(info.Name);
                extraLines.Add($"unexpected: {Shown(info.Name)} {info.ShapeText}");
            }
        }

        var missing = new List<string>();
        var binding = new List<(string, int[], SafetensorsTensorInfo)>();
        foreach (var (name, shape) in expected)
        {
            if (!stored.TryGetValue(name, out var info))
            {
                missing.Add(name);
                missingLines.Add($"missing: {name} (expected {SafetensorsTensorInfo.FormatShape(shape)})");
            }
            else if (!ShapeFits(name, shape, info.Shape))
            {
                wrong.Add(name);
                wrongLines.Add($"wrong shape: {info.Name} is {info.ShapeText}, expected {SafetensorsTensorInfo.FormatShape(shape)}");
            }
            else if (!info.DType.IsFloatingPoint())
            {
                wrong.Add(name);
                wrongLines.Add($"wrong dtype: {info.Name} is {info.DType}, expected a floating-point type");
            }
            else
            {
                binding.Add((name, shape, info));
            }
        }

        var details = missingLines.Concat(wrongLines).Concat(extraLines).ToList();
        if (details.Count > 0)
        {
            throw new CheckpointMismatchException(file.Path, details, missing, unexpected, wrong);
        }
        return binding;
    }

    /// <summary>Stored names come from the file; a hostile 100 MB name must not become a 100 MB message.</summary>
    private static string Shown(string name) => SafetensorsHeader.Truncate(name);

    /// <summary>
    /// Checkpoints saved before diffusers 0.14 name attention weights query/key/value/proj_attn; they are the same
    /// parameters as to_q/to_k/to_v/to_out.0.
    /// </summary>
    internal static string CanonicalName(string name)
    {
        var match = LegacyAttentionName().Match(name);
        if (!match.Success) return name;
        string renamed = match.Groups[2].Value switch
        {
            "query" => "to_q",
            "key" => "to_k",
            "value" => "to_v",
            _ => "to_out.0",
        };
        return $"{match.Groups[1].Value}.{renamed}.{match.Groups[3].Value}";
    }

    /// <summary>Old attention layers were 1×1 convolutions: an (out, in, 1, 1) weight holds the same numbers as (out, in).</summary>
    private static bool ShapeFits(string name, int[] expected, int[] actual) =>
        expected.AsSpan().SequenceEqual(actual)
        || (name.Contains(".attentions.", StringComparison.Ordinal) && expected.Length == 2 && actual.Length == 4 && actual[0] == expected[0] && actual[1] == expected[1] && actual[2] == 1 && actual[3] == 1);

    [GeneratedRegex(@"^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex LegacyAttentionName();
}
