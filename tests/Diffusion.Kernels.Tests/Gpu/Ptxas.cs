using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>What ptxas -v says about one kernel, and what cuobjdump found in its SASS.</summary>
internal sealed record AssembledKernel(string Architecture, int Registers, int StackFrameBytes, int SpillStoreBytes, int SpillLoadBytes,
    int SharedBytes, bool HasTensorCoreMma);

/// <summary>
/// NVIDIA's PTX assembler run as a process, to check ILGPU's PTX without a GPU. DIFFUSION_PTXAS names the ptxas
/// binary (.ci/run extracts CUDA 11.8's from Debian's non-free nvidia-cuda-toolkit .deb and sets it); otherwise
/// ptxas is looked up on PATH. cuobjdump is taken from the same folder.
/// </summary>
internal static partial class Ptxas
{
    public const string PathVariable = "DIFFUSION_PTXAS";
    public const string RequireVariable = "DIFFUSION_REQUIRE_PTXAS";

    /// <summary>The ptxas binary, or null with the reason.</summary>
    public static string? Find(out string reason)
    {
        string? configured = Environment.GetEnvironmentVariable(PathVariable);
        if (!string.IsNullOrEmpty(configured))
        {
            reason = $"{PathVariable}={configured} does not exist";
            return File.Exists(configured) ? configured : null;
        }
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, "ptxas");
            if (File.Exists(candidate))
            {
                reason = "";
                return candidate;
            }
        }
        reason = $"no ptxas: set {PathVariable} or put CUDA's ptxas on PATH (.ci/run installs it)";
        return null;
    }

    /// <summary>The one place that decides what a test needing ptxas does without it: skip, or fail under CI.</summary>
    public static string Require()
    {
        if (Find(out string reason) is { } path) return path;
        string? required = Environment.GetEnvironmentVariable(RequireVariable);
        if (!string.IsNullOrEmpty(required) && required != "0") Assert.Fail($"{RequireVariable}={required}, but {reason}");
        Assert.Skip(reason);
        return "";
    }

    /// <summary>"Cuda compilation tools, release 11.8, V11.8.89" or the like.</summary>
    public static string Version(string ptxas) => Run(ptxas, ["--version"]).Output.Split('\n').LastOrDefault(l => l.Contains("release", StringComparison.Ordinal))?.Trim() ?? "unknown";

    /// <summary>
    /// Assembles <paramref name="ptxFile"/> for <paramref name="architecture"/> into a cubin beside it; a non-zero exit
    /// (syntax error, unresolved extern, ...) throws with ptxas' own message.
    /// </summary>
    public static AssembledKernel Assemble(string ptxas, string ptxFile, string architecture)
    {
        string cubin = Path.ChangeExtension(ptxFile, "." + architecture + ".cubin");
        var (code, log) = Run(ptxas, ["-arch=" + architecture, "-v", "-o", cubin, ptxFile]);
        if (code != 0) throw new InvalidOperationException($"ptxas -arch={architecture} {Path.GetFileName(ptxFile)} failed ({code}):\n{log}");
        var properties = Properties().Match(log);
        var used = Used().Match(log);
        if (!properties.Success || !used.Success) throw new InvalidOperationException($"ptxas -v printed no function properties for {ptxFile}:\n{log}");
        var shared = SharedMemory().Match(log);
        return new AssembledKernel(architecture, Int(used.Groups[1]), Int(properties.Groups[1]), Int(properties.Groups[2]), Int(properties.Groups[3]),
            shared.Success ? Int(shared.Groups[1]) : 0, Sass(ptxas, cubin).Contains("HMMA.16816.F32", StringComparison.Ordinal));
    }

    private static string Sass(string ptxas, string cubin)
    {
        string cuobjdump = Path.Combine(Path.GetDirectoryName(ptxas)!, "cuobjdump");
        if (!File.Exists(cuobjdump)) throw new InvalidOperationException($"no cuobjdump beside {ptxas}: the tensor-core check needs it");
        var (code, output) = Run(cuobjdump, ["-sass", cubin]);
        return code == 0 ? output : throw new InvalidOperationException($"cuobjdump -sass {cubin} failed ({code}):\n{output}");
    }

    private static (int Code, string Output) Run(string file, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 2 minutes");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    private static int Int(Group g) => int.Parse(g.Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex Properties();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex Used();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex SharedMemory();
}
