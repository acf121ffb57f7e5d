using System.CommandLine;
using System.Runtime.InteropServices;
using Diffusion.Cli;

var root = new RootCommand("diffuse: a DDPM U-Net image generator with hand-written CPU and CUDA kernels.");
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(UnetCommand.Create());
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(BenchCommand.Create());

// Ctrl-C and SIGTERM cancel the running command, which stops between steps, removes nothing it has not
// written and exits with 130. We own this rather than System.CommandLine so the command always gets to clean up.
using var cancellation = new CancellationTokenSource();
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, cancellation.Token);

void Cancel(PosixSignalContext context)
{
    context.Cancel = true;
    cancellation.Cancel();
}
