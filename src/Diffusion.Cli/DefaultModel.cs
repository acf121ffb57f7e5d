namespace Diffusion.Cli;

/// <summary>
/// Finds the model <c>diffuse generate</c> uses when no --model is given, in this order:
/// the DIFFUSE_DEFAULT_MODEL environment variable, <c>default-model/</c> beside the binary (the build copies it
/// there), then <c>weights/default/</c> of a repository checkout above the binary (for <c>dotnet run</c> before the
/// model was trained and copied).
/// </summary>
internal static class DefaultModel
{
    public const string EnvironmentVariable = "DIFFUSE_DEFAULT_MODEL";

    /// <summary>The model folder, or null; <paramref name="searched"/> lists where it looked, for the error message.</summary>
    public static string? Locate(out IReadOnlyList<string> searched)
    {
        var places = new List<string>();
        searched = places;
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            // An explicit setting is used as given, so a typo surfaces as "does not exist" rather than a silent fallback.
            places.Add($"{EnvironmentVariable}={fromEnvironment}");
            return fromEnvironment;
        }

        string beside = Path.Combine(AppContext.BaseDirectory, "default-model");
        places.Add(beside);
        if (IsModel(beside)) return beside;

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "weights", "default");
            if (IsModel(candidate)) return candidate;
        }
        places.Add("weights/default/ in the folders above " + AppContext.BaseDirectory);
        return null;
    }

    private static bool IsModel(string folder) =>
        File.Exists(Path.Combine(folder, "unet", "config.json")) || File.Exists(Path.Combine(folder, "config.json"));
}
