using Diffusion.Kernels;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Gpu;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Cli;

/// <summary>A mistake in how the command was called (as opposed to a bad file or a failing device).</summary>
internal sealed class UsageException(string message) : DiffusionException(message);

/// <summary>
/// Turns any failure into one readable line on stderr and a distinct exit code. Stack traces are for
/// <c>--verbose</c> and for our own bugs.
/// </summary>
internal static class CliErrors
{
    /// <summary>
    /// Runs a command body on the thread pool. Task.Run, not Task.FromResult: System.CommandLine installs its
    /// Ctrl-C handler only once the action has returned its task, so a body run synchronously never sees it.
    /// </summary>
    public static Task<int> Run(bool verbose, Func<int> body) => Task.Run(() => Execute(verbose, body, Console.Error));

    public static int Execute(bool verbose, Func<int> body, TextWriter log)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return Report(e, verbose, log);
        }
    }

    public static int Report(Exception e, bool verbose, TextWriter log)
    {
        int code = CodeFor(e);
        log.WriteLine(code == ExitCodes.Cancelled ? "diffuse: cancelled; nothing was written" : $"diffuse: {e.Message}");
        if (verbose && e is CheckpointMismatchException { Omitted: > 0 } mismatch)
            log.WriteLine(string.Join(Environment.NewLine, ["all problems:", .. mismatch.Problems]));
        if (verbose) log.WriteLine(e);
        else if (code == ExitCodes.Internal) log.WriteLine("diffuse: this is a bug; run with --verbose for the stack trace");
        return code;
    }

    internal static int CodeFor(Exception e) => e switch
    {
        OperationCanceledException => ExitCodes.Cancelled,
        UsageException or SamplingOptionsException or CpuTierException => ExitCodes.Usage,
        OutputExistsException => ExitCodes.OutputExists,
        OutputUnwritableException => ExitCodes.OutputUnwritable,
        ModelConfigException => ExitCodes.BadModel,
        SafetensorsFormatException or PngFormatException => ExitCodes.BadInput,
        NonFiniteSampleException => ExitCodes.NonFinite,
        InsufficientMemoryForBatchException or InsufficientMemoryException or OutOfMemoryException => ExitCodes.OutOfMemory,
        GpuDeviceException { IsOutOfMemory: true } => ExitCodes.OutOfMemory,
        GpuDeviceException or GraphCaptureException or DeviceUnavailableException => ExitCodes.DeviceUnavailable,
        DiffusionException => ExitCodes.BadInput,
        IOException or UnauthorizedAccessException => ExitCodes.BadInput,
        _ => ExitCodes.Internal,
    };
}
