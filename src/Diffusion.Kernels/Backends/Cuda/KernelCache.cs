using System.Security.Cryptography;
using System.Text;

namespace Diffusion.Kernels.Backends.Cuda;

/// <summary>
/// Compiled kernels on disk, so only the first run on a machine pays for NVRTC. An entry is keyed by a hash of
/// everything that changes the output — source text, options (architecture included) and NVRTC version — so a
/// stale entry is never found rather than ever invalidated. Writes are atomic (temp file + rename); a cache that
/// cannot be written is skipped silently, since it only saves time.
/// </summary>
internal sealed class KernelCache(string? directory)
{
    /// <summary>DIFFUSION_KERNEL_CACHE, else $XDG_CACHE_HOME/diffusion-kernels, else ~/.cache/diffusion-kernels. Null: no home.</summary>
    public static string? DefaultDirectory()
    {
        string? explicitDir = Environment.GetEnvironmentVariable("DIFFUSION_KERNEL_CACHE");
        if (!string.IsNullOrEmpty(explicitDir)) return explicitDir;
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Combine(xdg, "diffusion-kernels");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".cache", "diffusion-kernels");
    }

    public string? Directory { get; } = directory;

    public static string Key(string source, IReadOnlyList<string> options, (int Major, int Minor) nvrtcVersion)
    {
        var text = new StringBuilder();
        text.Append("nvrtc ").Append(nvrtcVersion.Major).Append('.').Append(nvrtcVersion.Minor).Append('\n');
        foreach (string option in options) text.Append(option).Append('\n');
        text.Append('\0').Append(source);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>"conv2d-sm_90-0123456789abcdef.cubin": readable by a person, unique by the key.</summary>
    public static string FileName(string sourceFile, KernelTarget target, string key) =>
        $"{Path.GetFileNameWithoutExtension(sourceFile)}-{target.GpuArchitecture}-{key[..16]}.{(target.Cubin ? "cubin" : "ptx")}";

    public byte[]? TryRead(string fileName)
    {
        if (Directory == null) return null;
        try
        {
            string path = Path.Combine(Directory, fileName);
            return File.Exists(path) ? File.ReadAllBytes(path) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void TryWrite(string fileName, byte[] image)
    {
        if (Directory == null) return;
        string temp = Path.Combine(Directory, $".{fileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            File.WriteAllBytes(temp, image);
            File.Move(temp, Path.Combine(Directory, fileName), overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (Exception inner) when (inner is IOException or UnauthorizedAccessException) { }
        }
    }
}
