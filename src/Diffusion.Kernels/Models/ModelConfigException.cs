namespace Diffusion.Kernels.Models;

/// <summary>
/// A model folder, config or checkpoint we cannot use: missing files, wrong JSON types, unsupported
/// architecture options, or weights that do not fit the config. <see cref="Field"/> names the config field
/// at fault when there is one.
/// </summary>
public class ModelConfigException : DiffusionException
{
    public ModelConfigException(string filePath, string? field, string problem, Exception? inner = null)
        : base(field == null ? $"{filePath}: {problem}" : $"{filePath}: '{field}': {problem}", inner)
    {
        FilePath = filePath;
        Field = field;
        Problem = problem;
    }

    public string FilePath { get; }

    public string? Field { get; }

    public string Problem { get; }
}

/// <summary>
/// A checkpoint whose tensors do not match its config. Every problem is listed at once in the message, so one
/// run tells the user everything that needs fixing; the name lists let code react to them.
/// </summary>
public sealed class CheckpointMismatchException : ModelConfigException
{
    public CheckpointMismatchException(string filePath, string problem, IReadOnlyList<string> missing,
        IReadOnlyList<string> unexpected, IReadOnlyList<string> wrongShape)
        : base(filePath, null, problem)
    {
        Missing = missing;
        Unexpected = unexpected;
        WrongShape = wrongShape;
    }

    /// <summary>Expected tensor names the file lacks.</summary>
    public IReadOnlyList<string> Missing { get; }

    /// <summary>Tensor names in the file that the config does not call for (as stored).</summary>
    public IReadOnlyList<string> Unexpected { get; }

    /// <summary>Tensor names whose shape (or dtype) the config cannot use.</summary>
    public IReadOnlyList<string> WrongShape { get; }
}
