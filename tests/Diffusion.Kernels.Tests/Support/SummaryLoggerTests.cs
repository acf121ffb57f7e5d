using Diffusion.Kernels.TestLogger;
using FluentAssertions;
using Microsoft.VisualStudio.TestPlatform.ObjectModel;
using Microsoft.VisualStudio.TestPlatform.ObjectModel.Client;
using Microsoft.VisualStudio.TestPlatform.ObjectModel.Logging;
using TestResult = Microsoft.VisualStudio.TestPlatform.ObjectModel.TestResult;

namespace Diffusion.Kernels.Tests.Support;

/// <summary>The logger that keeps dotnet test's output short: failures in full, skips as one line of reasons.</summary>
public class SummaryLoggerTests
{
    [Fact]
    public void Skips_become_one_line_of_counted_reasons_and_failures_keep_their_message()
    {
        var output = new StringWriter();
        var events = new Events();
        new SummaryLogger(output).Initialize(events, "results");

        events.Report(Result("A.Gpu1", TestOutcome.Skipped, "no usable CUDA GPU: no driver"));
        events.Report(Result("A.Gpu2", TestOutcome.Skipped, "no usable CUDA GPU: no driver"));
        events.Report(Result("A.Nvrtc", TestOutcome.Skipped, "NVRTC not found\nmore detail"));
        events.Report(Result("A.Works", TestOutcome.Passed, null));
        events.Report(Result("A.Broken", TestOutcome.Failed, "Expected 1\nActual 2", "at A.Broken() in A.cs:line 3\nat System.Reflection.Invoke()"));
        events.Complete();

        output.ToString().ReplaceLineEndings("\n").Should().Be(
            "  Failed A.Broken\n    Expected 1\n    Actual 2\n      at A.Broken() in A.cs:line 3\n" +
            "Skipped 3 tests: 2 × no usable CUDA GPU: no driver; 1 × NVRTC not found\n");
    }

    [Fact]
    public void A_run_without_skips_adds_nothing()
    {
        var output = new StringWriter();
        var events = new Events();
        new SummaryLogger(output).Initialize(events, "results");
        events.Report(Result("A.Works", TestOutcome.Passed, null));
        events.Complete();
        output.ToString().Should().BeEmpty();
    }

    private static TestResult Result(string name, TestOutcome outcome, string? message, string? stack = null) =>
        new(new TestCase(name, new Uri("executor://test"), "tests.dll")) { Outcome = outcome, ErrorMessage = message, ErrorStackTrace = stack };

    private sealed class Events : TestLoggerEvents
    {
        public override event EventHandler<TestRunMessageEventArgs>? TestRunMessage { add { } remove { } }

        public override event EventHandler<TestRunStartEventArgs>? TestRunStart { add { } remove { } }

        public override event EventHandler<TestResultEventArgs>? TestResult;

        public override event EventHandler<TestRunCompleteEventArgs>? TestRunComplete;

        public override event EventHandler<DiscoveryStartEventArgs>? DiscoveryStart { add { } remove { } }

        public override event EventHandler<TestRunMessageEventArgs>? DiscoveryMessage { add { } remove { } }

        public override event EventHandler<DiscoveredTestsEventArgs>? DiscoveredTests { add { } remove { } }

        public override event EventHandler<DiscoveryCompleteEventArgs>? DiscoveryComplete { add { } remove { } }

        public void Report(TestResult result) => TestResult?.Invoke(this, new TestResultEventArgs(result));

        public void Complete() => TestRunComplete?.Invoke(this,
            new TestRunCompleteEventArgs(null, false, false, null, null, TimeSpan.Zero));
    }
}
