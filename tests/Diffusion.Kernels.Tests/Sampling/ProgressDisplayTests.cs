using Diffusion.Cli;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Sampling;

public class ProgressDisplayTests
{
    [Fact]
    public void Describes_rate_and_remaining_time()
    {
        var text = ProgressDisplay.Describe(new GenerationProgress(10, 50, 801, TimeSpan.FromSeconds(4)));
        text.Should().Be("step 10/50 t=801 2.5 steps/s ETA 0:16");
        ProgressDisplay.Describe(new GenerationProgress(1, 10000, 999.5f, TimeSpan.FromSeconds(1)))
            .Should().Be("step 1/10000 t=999.5 1.0 steps/s ETA 2:46:39");
        // A step longer than a second (a large batch) reads as seconds per step, not "0.0 steps/s".
        ProgressDisplay.Describe(new GenerationProgress(2, 10, 500, TimeSpan.FromSeconds(25)))
            .Should().Be("step 2/10 t=500 12.5 s/step ETA 1:40");
    }

    [Fact]
    public void Redirected_output_gets_a_plain_line_per_tenth_of_the_run()
    {
        var output = new StringWriter();
        var display = new ProgressDisplay(output, interactive: false);
        for (int i = 1; i <= 50; i++) display.Report(new GenerationProgress(i, 50, 1000 - 20 * i, TimeSpan.FromSeconds(i)));
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().HaveCount(11, "the first step, then one line per tenth of the run");
        lines.Should().NotContain(l => l.Contains('\r'));
        lines[^1].Should().StartWith("step 50/50");
    }

    [Fact]
    public void A_terminal_gets_one_bar_redrawn_in_place()
    {
        var output = new StringWriter();
        var display = new ProgressDisplay(output, interactive: true);
        for (int i = 1; i <= 4; i++) display.Report(new GenerationProgress(i, 4, 0, TimeSpan.FromSeconds(i)));
        string text = output.ToString();
        text.Split('\r', StringSplitOptions.RemoveEmptyEntries).Should().HaveCount(4);
        text.Should().Contain("[##############################] step 4/4").And.EndWith(Environment.NewLine);
    }

    [Fact]
    public void A_chunked_step_moves_the_bar_and_names_the_images_done()
    {
        var output = new StringWriter();
        var display = new ProgressDisplay(output, interactive: true);
        for (int chunk = 1; chunk <= 4; chunk++)
            display.Report(new GenerationProgress(1, 2, 999, TimeSpan.FromSeconds(10 * chunk), chunk, 4, Math.Min(64 * chunk, 200), 200));
        var frames = output.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries);

        frames.Should().HaveCount(4);
        frames[0].Should().StartWith("[###...").And.Contain("step 1/2 images 64/200 t=999 40.0 s/step ETA 1:10");
        frames[3].Should().StartWith("[###############...............] step 1/2 images 200/200");
    }
}
