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

    /// <summary>Runs diffuse with extra environment variables set (DIFFUSION_CPU_TIER).</summary>
    public static Result RunWith(IReadOnlyDictionary<string, string> environment, params string[] args) => Finish(Start(args, environment), args);

    /// <summary>Starts diffuse without waiting, for tests that interrupt it.</summary>
    public static Process Start(params string[] args) => Start(args, null);

    private static Process Start(string[] args, IReadOnlyDictionary<string, string>? environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "diffuse.dll"));
        foreach (string arg in args) start.ArgumentList.Add(arg);
        start.Environment["DOTNET_NOLOGO"] = "1";
        // Tests choose models explicitly or rely on the copy beside the binary, never on the caller's setting.
        start.Environment.Remove("DIFFUSE_DEFAULT_MODEL");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return Process.Start(start)!;
    }

    public static Result Finish(Process process, params string[] args)
    {
        using var _ = process;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("diffuse " + string.Join(' ', args) + " did not finish");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
