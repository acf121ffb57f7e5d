namespace Diffusion.Kernels.IO;

/// <summary>A safetensors file that cannot be read as one: truncated, malformed, inconsistent, or not there.</summary>
public sealed class SafetensorsFormatException : DiffusionException
{
    public SafetensorsFormatException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
        Problem = problem;
    }

    public string FilePath { get; }

    public string Problem { get; }
}
