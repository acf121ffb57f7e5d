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
/// A checkpoint whose tensors do not match its config. The message lists the first <see cref="ShownProblems"/>
/// problems and counts the rest, so a header of a million stray tensors makes a readable error, not a 26 MB one;
/// <see cref="Problems"/> holds them all (the CLI prints them with --verbose), and the name lists let code react.
/// </summary>
public sealed class CheckpointMismatchException : ModelConfigException
{
    public const int ShownProblems = 10;

    public CheckpointMismatchException(string filePath, IReadOnlyList<string> problems, IReadOnlyList<string> missing,
        IReadOnlyList<string> unexpected, IReadOnlyList<string> wrongShape)
        : base(filePath, null, Summarise(problems))
    {
        Problems = problems;
        Missing = missing;
        Unexpected = unexpected;
        WrongShape = wrongShape;
    }

    /// <summary>Every problem, one line each ("missing: …", "wrong shape: …", "unexpected: …").</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>How many problems the message leaves out.</summary>
    public int Omitted => Math.Max(0, Problems.Count - ShownProblems);

    /// <summary>Expected tensor names the file lacks.</summary>
    public IReadOnlyList<string> Missing { get; }

    /// <summary>Tensor names in the file that the config does not call for (as stored).</summary>
    public IReadOnlyList<string> Unexpected { get; }

    /// <summary>Tensor names whose shape (or dtype) the config cannot use.</summary>
    public IReadOnlyList<string> WrongShape { get; }

    private static string Summarise(IReadOnlyList<string> problems)
    {
        var lines = problems.Take(ShownProblems).Select(p => "  " + p).ToList();
        if (problems.Count > ShownProblems)
            lines.Add($"  … and {problems.Count - ShownProblems} more (--verbose lists them all)");
        return $"the weights do not match the config ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):"
            + Environment.NewLine + string.Join(Environment.NewLine, lines);
    }
}
