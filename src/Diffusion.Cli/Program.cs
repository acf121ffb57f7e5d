using System.CommandLine;
using System.Runtime.InteropServices;
using Diffusion.Cli;

var root = new RootCommand("diffuse: a DDPM U-Net image generator with hand-written CPU and CUDA kernels.");
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(UnetCommand.Create());
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(KernelsCommand.Create());

// Ctrl-C and SIGTERM cancel the running command, which stops between steps, removes nothing it has not
// written and exits with 130. We own this rather than System.CommandLine so the command always gets to clean up.
using var cancellation = new CancellationTokenSource();
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
var parsed = root.Parse(args);
// A mistyped command line is a usage error (exit 2) told in one line, not System.CommandLine's exit 1 and the
// whole help text, which scripts would read as a crash.
if (parsed.Errors.Count > 0)
{
    var command = parsed.CommandResult.Command;
    string help = command is RootCommand ? "diffuse --help" : $"diffuse {command.Name} --help";
    Console.Error.WriteLine($"diffuse: {string.Join("; ", parsed.Errors.Select(e => e.Message.TrimEnd('.')))} (see '{help}')");
    return ExitCodes.Usage;
}
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, cancellation.Token);

void Cancel(PosixSignalContext context)
{
    context.Cancel = true;
    cancellation.Cancel();
}
