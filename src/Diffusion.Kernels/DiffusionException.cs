namespace Diffusion.Kernels;

/// <summary>
/// Base of every error this library raises on purpose. Callers (the CLI, embedding apps) catch this one type
/// to tell "the input is wrong" apart from a bug.
/// </summary>
public class DiffusionException : Exception
{
    public DiffusionException(string message) : base(message) { }

    public DiffusionException(string message, Exception? inner) : base(message, inner) { }
}
