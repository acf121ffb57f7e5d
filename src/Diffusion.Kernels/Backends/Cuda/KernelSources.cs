namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// Finds kernels/*.cu: DIFFUSION_KERNELS_DIR if set, then the kernels/ folder the library build copies next to
/// the assembly, then (running from a source checkout) the repository's kernels/ found by walking up.
/// </summary>
internal static class KernelSources
{
    public static string Read(string fileName) => File.ReadAllText(Find(fileName));

    public static string Find(string fileName)
    {
        var tried = new List<string>();
        foreach (string dir in CandidateDirectories())
        {
            string path = Path.Combine(dir, fileName);
            if (File.Exists(path)) return path;
            tried.Add(dir);
        }
        throw new DiffusionException($"kernel source {fileName} not found; looked in {string.Join(", ", tried)}");
    }

    public static IEnumerable<string> CandidateDirectories()
    {
        string? explicitDir = Environment.GetEnvironmentVariable("DIFFUSION_KERNELS_DIR");
        if (!string.IsNullOrEmpty(explicitDir)) yield return explicitDir;
        yield return Path.Combine(AppContext.BaseDirectory, "kernels");
        // Location is empty inside a single-file app; the base directory above already covers that case.
#pragma warning disable IL3000
        string? assemblyDir = Path.GetDirectoryName(typeof(KernelSources).Assembly.Location);
#pragma warning restore IL3000
        if (!string.IsNullOrEmpty(assemblyDir)) yield return Path.Combine(assemblyDir, "kernels");
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory).Parent; dir != null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, "kernels");
    }
}
