namespace Diffusion.Kernels.Tests.Support;

/// <summary>Finds files of the repository (golden files, kernels) from wherever the test binary runs.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string Goldens => Path.Combine(Root, "weights", "goldens");

    /// <summary>The committed default model that <c>diffuse generate</c> embeds.</summary>
    public static string DefaultModel => Path.Combine(Root, "weights", "default");

    public static string Kernels => Path.Combine(Root, "kernels");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Diffusion.Kernels.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("Diffusion.Kernels.sln not found above " + AppContext.BaseDirectory);
    }
}
