using System.Globalization;
using Diffusion.Kernels;

namespace Diffusion.Cli;

/// <summary>
/// Sampling progress on stderr: a bar redrawn in place with steps/s and ETA on a terminal, or plain lines
/// (about every tenth of the run) when stderr is redirected to a file or pipe, where redraws would be noise.
/// Reports arrive on the sampling thread, so this draws synchronously.
/// </summary>
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

    /// <summary>"12/50 t=761 4.3 steps/s ETA 0:09": the rate is the average so far, which a steady loop makes a fair guess.</summary>
    public static string Describe(GenerationProgress value)
    {
        double seconds = value.Elapsed.TotalSeconds;
        double rate = seconds > 0 ? value.Step / seconds : 0;
        string eta = rate > 0 ? Clock(TimeSpan.FromSeconds((value.TotalSteps - value.Step) / rate)) : "?";
        return string.Create(CultureInfo.InvariantCulture,
            $"step {value.Step}/{value.TotalSteps} t={value.Timestep:0.##} {rate:0.0} steps/s ETA {eta}");
    }

    private static string Clock(TimeSpan span) => span.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}:{span.Minutes:00}:{span.Seconds:00}")
        : string.Create(CultureInfo.InvariantCulture, $"{span.Minutes}:{span.Seconds:00}");
}
