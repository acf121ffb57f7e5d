using System.Globalization;
using Diffusion.Kernels;

namespace Diffusion.Cli;

/// <summary>
/// Sampling progress on stderr: a bar redrawn in place with the rate and ETA on a terminal, or plain lines (about
/// every tenth of the run) when stderr is redirected to a file or pipe, where redraws would be noise. Reports
/// arrive on the sampling thread, so this draws synchronously.
/// </summary>
/// <remarks>
/// Spectre.Console's progress bar was the alternative; we dropped the package instead: its live display redraws
/// from a thread of its own and owns the console while it runs, which would need a second path for redirected
/// stderr (where it degrades to nothing) and for a console that fails mid-run, all to draw one line this class
/// draws in a few.
/// </remarks>
public sealed class ProgressDisplay(TextWriter output, bool interactive) : IProgress<GenerationProgress>
{
    private const int BarWidth = 30;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);

    private TimeSpan? _lastDrawn;
    private int _lastTenth = -1;

    public void Report(GenerationProgress value)
    {
        bool last = value.IsLast;
        if (interactive)
        {
            if (!last && value.Elapsed - _lastDrawn < RedrawInterval) return; // null (never drawn) compares false
            _lastDrawn = value.Elapsed;
            int filled = (int)(BarWidth * value.Fraction);
            output.Write($"\r[{new string('#', filled)}{new string('.', BarWidth - filled)}] {Describe(value)}   ");
            if (last) output.WriteLine();
        }
        else
        {
            int tenth = (int)(10 * value.Fraction);
            if (tenth == _lastTenth && !last) return;
            _lastTenth = tenth;
            output.WriteLine(Describe(value));
        }
        output.Flush();
    }

    /// <summary>
    /// "step 12/50 t=761 4.3 steps/s ETA 0:09"; a batch run in chunks adds the images through this step
    /// ("step 1/20 images 640/4096 …"), and a step longer than a second reads "12.5 s/step". The rate is the average
    /// so far, counted in fractions of a step, which a steady loop makes a fair guess.
    /// </summary>
    public static string Describe(GenerationProgress value)
    {
        double seconds = value.Elapsed.TotalSeconds;
        double stepsDone = value.Fraction * value.TotalSteps;
        string rate = stepsDone <= 0 || seconds <= 0 ? "? steps/s"
            : stepsDone >= seconds ? string.Create(CultureInfo.InvariantCulture, $"{stepsDone / seconds:0.0} steps/s")
            : string.Create(CultureInfo.InvariantCulture, $"{seconds / stepsDone:0.0} s/step");
        string eta = stepsDone > 0 && seconds > 0 ? Clock(TimeSpan.FromSeconds((value.TotalSteps - stepsDone) * seconds / stepsDone)) : "?";
        string images = value.ChunkCount > 1 ? $" images {value.ImagesDone}/{value.Batch}" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"step {value.Step}/{value.TotalSteps}{images} t={value.Timestep:0.##} {rate} ETA {eta}");
    }

    private static string Clock(TimeSpan span) => span.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}:{span.Minutes:00}:{span.Seconds:00}")
        : string.Create(CultureInfo.InvariantCulture, $"{span.Minutes}:{span.Seconds:00}");
}
