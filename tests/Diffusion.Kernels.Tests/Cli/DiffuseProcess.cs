using System.Diagnostics;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>
/// Runs the real <c>diffuse</c> binary (built beside the tests) in a child process, so exit codes, stderr and
/// files on disk are exactly what a user would see.
/// </summary>
internal static class DiffuseProcess
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    public static Result Run(params string[] args) => Finish(Start(args), args);

    /// <summary>Runs diffuse in <paramref name="directory"/>, for commands that write to the current folder.</summary>
    public static Result RunIn(string directory, params string[] args) => Finish(Start("dotnet", [DllPath, .. args], directory), args);

    /// <summary>Runs diffuse with extra environment variables set (DIFFUSION_CPU_TIER).</summary>
    public static Result RunWith(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        Finish(Start("dotnet", [DllPath, .. args], environment: environment), args);

    /// <summary>
    /// Runs diffuse through <c>/bin/sh</c> with <paramref name="redirections"/> applied to it (<c>2>&amp;-</c>,
    /// <c>2>/dev/full</c>, <c>>&amp;-</c>): what a user's shell does, which a redirected child process cannot show.
    /// </summary>
    public static Result RunRedirected(string redirections, params string[] args) =>
        Finish(Start("/bin/sh", ["-c", $"exec dotnet \"$0\" \"$@\" {redirections}", DllPath, .. args]), args);

    /// <summary>Starts diffuse without waiting, for tests that interrupt it.</summary>
    public static Process Start(params string[] args) => Start("dotnet", [DllPath, .. args]);

    private static string DllPath => Path.Combine(AppContext.BaseDirectory, "diffuse.dll");

    private static Process Start(string program, string[] args, string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory ?? "",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.Environment["DOTNET_NOLOGO"] = "1";
        // Tests choose models explicitly or rely on the copy beside the binary, never on the caller's setting.
        start.Environment.Remove("DIFFUSE_DEFAULT_MODEL");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return Process.Start(start)!;
    }

    public static Result Finish(Process process, params string[] args) => Finish(process, TimeSpan.FromMinutes(5), args);

    /// <summary>Waits at most <paramref name="limit"/>: for the cases where hanging is the failure under test.</summary>
    public static Result Finish(Process process, TimeSpan limit, params string[] args)
    {
        using var _ = process;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("diffuse " + string.Join(' ', args) + " did not finish");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
