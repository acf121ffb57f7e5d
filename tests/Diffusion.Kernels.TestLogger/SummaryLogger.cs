using System.Globalization;
using Microsoft.VisualStudio.TestPlatform.ObjectModel;
using Microsoft.VisualStudio.TestPlatform.ObjectModel.Client;
using Microsoft.VisualStudio.TestPlatform.ObjectModel.Logging;

namespace Diffusion.Kernels.TestLogger;

/// <summary>
/// <c>dotnet test</c>'s console output for people: each failure with its message and the top of its stack, then one
/// line counting the skipped tests by reason ("Skipped 177 tests: 177 × no usable CUDA GPU: …") instead of one
/// line per skipped test. The console logger is quiet beside it (tests/Diffusion.Kernels.Tests/test.runsettings and
/// VSTestVerbosity), so the run ends with that line and the console logger's counts.
/// </summary>
[FriendlyName("summary")]
[ExtensionUri("logger://Diffusion.Kernels/SummaryLogger/1.0")]
public sealed class SummaryLogger : ITestLogger
{
    /// <summary>Stack lines shown per failure: enough to find the assertion, short enough to scan many failures.</summary>
    private const int StackLines = 6;

    private readonly Dictionary<string, int> _skipReasons = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly TextWriter _output;
    private int _skipped;

    public SummaryLogger() : this(Console.Out) { }

    public SummaryLogger(TextWriter output) => _output = output;

    public void Initialize(TestLoggerEvents events, string testRunDirectory)
    {
        ArgumentNullException.ThrowIfNull(events);
        events.TestResult += OnResult;
        events.TestRunComplete += OnComplete;
    }

    private void OnResult(object? sender, TestResultEventArgs e)
    {
        var result = e.Result;
        lock (_gate)
        {
            switch (result.Outcome)
            {
                case TestOutcome.Failed:
                    WriteFailure(result);
                    break;
                case TestOutcome.Skipped:
                    _skipped++;
                    string reason = Reason(result);
                    _skipReasons[reason] = _skipReasons.GetValueOrDefault(reason) + 1;
                    break;
            }
        }
    }

    private void WriteFailure(TestResult result)
    {
        _output.WriteLine($"  Failed {result.TestCase.DisplayName}");
        foreach (string line in (result.ErrorMessage ?? "").Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0))
            _output.WriteLine("    " + line);
        foreach (string line in (result.ErrorStackTrace ?? "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0)
                     .Where(l => !l.StartsWith("at FluentAssertions.", StringComparison.Ordinal) && !l.StartsWith("at System.", StringComparison.Ordinal))
                     .Take(StackLines))
            _output.WriteLine("      " + line);
    }

    /// <summary>xunit passes the skip reason as the result's message; tests skipped with none share one bucket.</summary>
    private static string Reason(TestResult result)
    {
        string? text = result.ErrorMessage ?? result.Messages.FirstOrDefault()?.Text;
        text = text?.Split('\n')[0].Trim();
        return string.IsNullOrEmpty(text) ? "no reason given" : text;
    }

    private void OnComplete(object? sender, TestRunCompleteEventArgs e)
    {
        lock (_gate)
        {
            if (_skipped == 0) return;
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Skipped {_skipped} tests: ") + string.Join("; ",
                _skipReasons.OrderByDescending(r => r.Value).ThenBy(r => r.Key, StringComparer.Ordinal).Select(r => $"{r.Value} × {r.Key}")));
            _output.Flush();
        }
    }
}
