using System.Text.RegularExpressions;

namespace Diffusion.Kernels.Backends.Cuda.Interop;

/// <summary>
/// Decides where to look for NVRTC, newest CUDA first: an explicit DIFFUSION_NVRTC path, then each soname
/// (libnvrtc.so.13, .12, .11.2 ...) in each known folder, then the bare sonames for the system loader to resolve.
/// Pure functions of their inputs so the order can be unit-tested on any machine.
/// </summary>
internal static partial class NvrtcLocator
{
    /// <summary>Newest first. CUDA 11.x kept the soname .11.2 for every minor release from 11.2 on.</summary>
    internal static readonly string[] LinuxSonames =
        ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11.1", "libnvrtc.so.11.0", "libnvrtc.so"];

    internal static readonly string[] WindowsNames =
        ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll", "nvrtc64_111_0.dll"];

    internal static IReadOnlyList<string> Sonames => OperatingSystem.IsWindows() ? WindowsNames : LinuxSonames;

    /// <summary>Folders where CUDA installs put NVRTC, in the order they are searched.</summary>
    internal static IReadOnlyList<string> SearchDirectories()
    {
        var dirs = new List<string>();
        foreach (string variable in new[] { "CUDA_PATH", "CUDA_HOME" })
        {
            string? root = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrEmpty(root)) continue;
            dirs.Add(Path.Combine(root, "lib64"));
            dirs.Add(Path.Combine(root, "lib"));
            dirs.Add(Path.Combine(root, "bin"));
        }
        string? loaderPath = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
        if (!string.IsNullOrEmpty(loaderPath)) dirs.AddRange(loaderPath.Split(':', StringSplitOptions.RemoveEmptyEntries));
        dirs.AddRange(["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu",
            "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"]);
        return dirs.Distinct().ToList();
    }

    /// <summary>
    /// Paths (rooted, found in <paramref name="directories"/>) and bare sonames to try, in order. An explicit
    /// <paramref name="overridePath"/> (DIFFUSION_NVRTC) comes first.
    /// </summary>
    internal static IEnumerable<string> Candidates(IReadOnlyList<string> directories, Func<string, bool> fileExists,
        IReadOnlyList<string>? sonames = null, string? overridePath = null)
    {
        overridePath ??= Environment.GetEnvironmentVariable("DIFFUSION_NVRTC");
        if (!string.IsNullOrEmpty(overridePath)) yield return overridePath;
        sonames ??= Sonames;
        foreach (string soname in sonames)
        {
            foreach (string dir in directories)
            {
                string path = Path.Combine(dir, soname);
                if (fileExists(path)) yield return path;
            }
        }
        foreach (string soname in sonames) yield return soname;
    }

    /// <summary>
    /// The libnvrtc-builtins file in the same folder as <paramref name="nvrtcPath"/> that belongs to it: same CUDA
    /// major version when the soname tells it, highest version otherwise. Null when there is none.
    /// </summary>
    internal static string? BuiltinsBeside(string nvrtcPath, IEnumerable<string> filesInFolder)
    {
        int? major = MajorOf(Path.GetFileName(nvrtcPath));
        string folder = Path.GetDirectoryName(nvrtcPath) ?? "";
        return filesInFolder
            .Where(f => string.Equals(Path.GetDirectoryName(f) ?? "", folder, StringComparison.Ordinal))
            .Select(f => (Path: f, Version: BuiltinsVersion(Path.GetFileName(f))))
            .Where(f => f.Version != null && (major == null || f.Version.Major == major))
            .OrderByDescending(f => f.Version)
            .Select(f => f.Path)
            .FirstOrDefault();
    }

    private static int? MajorOf(string nvrtcFileName)
    {
        var m = SonameVersion().Match(nvrtcFileName);
        return m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    private static Version? BuiltinsVersion(string fileName)
    {
        var m = BuiltinsPattern().Match(fileName);
        if (!m.Success) return null;
        string text = m.Groups[1].Value;
        return Version.TryParse(text.Contains('.') ? text : text + ".0", out var v) ? v : null;
    }

    [GeneratedRegex(@"^libnvrtc\.so\.(\d+)")]
    private static partial Regex SonameVersion();

    [GeneratedRegex(@"^libnvrtc-builtins\.so\.(\d+(?:\.\d+){0,3})$")]
    private static partial Regex BuiltinsPattern();
}
