using Diffusion.Kernels;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;

namespace Diffusion.Cli;

/// <summary>A mistake in how the command was called (as opposed to a bad file or a failing device).</summary>
internal sealed class UsageException(string message) : DiffusionException(message);

/// <summary>
/// Turns any failure into one readable line on stderr and a distinct exit code. Stack traces are for
/// <c>--verbose</c> and for our own bugs.
/// </summary>
internal static class CliErrors
{
    public static Task<int> Run(bool verbose, Func<int> body) => Task.FromResult(Execute(verbose, body));

    public static int Execute(bool verbose, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return Report(e, verbose);
        }
    }

    public static int Report(Exception e, bool verbose)
    {
        int code = CodeFor(e);
        Console.Error.WriteLine(code == ExitCodes.Cancelled ? "diffuse: cancelled" : $"diffuse: {e.Message}");
        if (verbose) Console.Error.WriteLine(e);
        else if (code == ExitCodes.Internal) Console.Error.WriteLine("diffuse: this is a bug; run with --verbose for the stack trace");
        return code;
    }

    internal static int CodeFor(Exception e) => e switch
    {
        OperationCanceledException => ExitCodes.Cancelled,
        UsageException => ExitCodes.Usage,
        OutputExistsException => ExitCodes.OutputExists,
        ModelConfigException => ExitCodes.BadModel,
        SafetensorsFormatException => ExitCodes.BadInput,
        InsufficientMemoryException or OutOfMemoryException => ExitCodes.OutOfMemory,
        DiffusionException => ExitCodes.BadInput,
        _ => ExitCodes.Internal,
    };
}
