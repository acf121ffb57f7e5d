using System.CommandLine;
using System.Runtime.InteropServices;
using Diffusion.Cli;

var root = Commands.Root();

// Console output is a courtesy; losing it (a closed or full stderr, a vanished terminal) must not lose the run.
ConsoleStreams.Install();

// Ctrl-C, SIGTERM, SIGHUP (the terminal or SSH session went away) and SIGQUIT cancel the running command, which
// stops between steps, deletes its temporary files and exits with 130. We own this rather than System.CommandLine
// so the command always gets to clean up. A second signal is left to its default action, for a command that does
// not stop.
using var cancellation = new CancellationTokenSource();
PosixSignalRegistration[] signals =
[
    .. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT }
        .Select(signal => PosixSignalRegistration.Create(signal, Cancel)),
];
var parsed = root.Parse(args);
// A mistyped command line is a usage error (exit 2) told in one line, not System.CommandLine's exit 1 and the
// whole help text, which scripts would read as a crash.
if (Commands.ErrorLine(parsed) is { } error)
{
    Console.Error.WriteLine(error);
    return ExitCodes.Usage;
}
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, cancellation.Token);
}
finally
{
    foreach (var registration in signals) registration.Dispose();
}

void Cancel(PosixSignalContext context)
{
    if (cancellation.IsCancellationRequested) return;
    context.Cancel = true;
    cancellation.Cancel();
}
