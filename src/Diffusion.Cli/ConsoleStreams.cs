using System.Text;

namespace Diffusion.Cli;

/// <summary>
/// Standard output and error that may fail without failing the run. A closed stderr (<c>2>&amp;-</c>), a full one
/// (<c>2>/dev/full</c>) or a reader gone from a pipe (an SSH disconnect) must not cost the user the image the run
/// was for, nor its exit code: the first failed write silences the stream, and the work goes on.
/// </summary>
internal static class ConsoleStreams
{
    private static FailSafeWriter? _output;

    /// <summary>Installs the fail-safe writers under <see cref="Console.Out"/> and <see cref="Console.Error"/>.</summary>
    public static void Install()
    {
        _output = new FailSafeWriter(Console.Out);
        Console.SetOut(_output);
        Console.SetError(new FailSafeWriter(Console.Error));
    }

    /// <summary>
    /// For commands whose product is what they print (info, bench without --json): a lost standard output makes
    /// the run a failure, exit 9, told on stderr (if that still works).
    /// </summary>
    public static int RequireOutput(int code)
    {
        if (code != ExitCodes.Success || _output is not { FailedWith: { } reason }) return code;
        Console.Error.WriteLine($"diffuse: standard output cannot be written ({reason}); nothing was printed in full");
        return ExitCodes.OutputUnwritable;
    }

    /// <summary>Forwards to a console writer until a write fails, then drops everything.</summary>
    private sealed class FailSafeWriter(TextWriter inner) : TextWriter
    {
        public string? FailedWith { get; private set; }

        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value) => Guard(() => inner.Write(value));

        public override void Write(string? value) => Guard(() => inner.Write(value));

        public override void Write(char[] buffer, int index, int count) => Guard(() => inner.Write(buffer, index, count));

        public override void WriteLine(string? value) => Guard(() => inner.WriteLine(value));

        public override void Flush() => Guard(inner.Flush);

        private void Guard(Action write)
        {
            if (FailedWith is not null) return;
            try
            {
                write();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                // A closed descriptor reads as "access denied" (EBADF); any of these means nobody will read it.
                FailedWith = e is UnauthorizedAccessException ? "the stream is closed" : e.Message;
            }
        }
    }
}
