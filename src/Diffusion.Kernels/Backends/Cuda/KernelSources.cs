namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// Finds kernels/*.cu: DIFFUSION_KERNELS_DIR if set, then the kernels/ folder the library build copies next to
/// the assembly, then (running from a source checkout) the repository's kernels/ found by walking up.
/// </summary>
internal static class KernelSources
{
    /// <summary>The source NVRTC compiles: the file with each #include "x.cuh" of a shared kernels/ header spliced in.</summary>
    public static string Read(string fileName) => Splice(fileName, File.ReadAllText(Find(fileName)), header => File.ReadAllText(Find(header)));

    /// <summary>
    /// Replaces each line #include "name.cuh" with that header's text between #line directives, so NVRTC sees one
    /// self-contained source (no include paths to pass, and the kernel cache, which hashes the source, notices a
    /// changed header) while its messages still name the file and line they come from. Headers are not nested.
    /// </summary>
    internal static string Splice(string fileName, string source, Func<string, string> readHeader)
    {
        var lines = source.Split('\n');
        var spliced = new System.Text.StringBuilder(source.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (IncludedHeader(line) is { } header)
            {
                spliced.Append("#line 1 \"").Append(header).Append("\"\n").Append(readHeader(header).TrimEnd('\n')).Append('\n');
                spliced.Append("#line ").Append(i + 2).Append(" \"").Append(fileName).Append("\"\n");
            }
            else
            {
                spliced.Append(lines[i]);
                if (i < lines.Length - 1) spliced.Append('\n');
            }
        }
        return spliced.ToString();
    }

    private static string? IncludedHeader(string line)
    {
        const string Prefix = "#include \"";
        if (!line.StartsWith(Prefix, StringComparison.Ordinal) || !line.EndsWith(".cuh\"", StringComparison.Ordinal)) return null;
        string name = line[Prefix.Length..^1];
        if (name.Contains('/') || name.Contains('\\'))
            throw new DiffusionException($"kernel header {name}: only headers beside the kernels (kernels/*.cuh) can be included");
        return name;
    }

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
