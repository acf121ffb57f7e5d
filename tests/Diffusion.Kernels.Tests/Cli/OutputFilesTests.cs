using Diffusion.Cli;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary>A run's outputs appear together or not at all, whatever stops the write.</summary>
public sealed class OutputFilesTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A signal that lands while the files are being written (it only cancels the token) stops the commit.</summary>
    [Fact]
    public void A_signal_in_the_middle_of_the_write_commits_nothing()
    {
        string png = _dir.File("o.png"), tensor = _dir.File("o.safetensors");
        File.WriteAllText(png, "old image");
        using var signal = new CancellationTokenSource();
        OutputFile[] outputs =
        [
            new(tensor, stream => stream.Write(new byte[100_000])),
            new(png, stream =>
            {
                stream.Write(new byte[50_000]);
                signal.Cancel(); // as the SIGTERM handler does, half-way through the second file
                stream.Write(new byte[50_000]);
            }),
        ];

        var act = () => OutputFiles.WriteAll(outputs, force: true, signal.Token);

        act.Should().Throw<OperationCanceledException>();
        File.ReadAllText(png).Should().Be("old image");
        Directory.GetFiles(_dir.Path).Should().Equal(png);
    }

    [Fact]
    public void When_a_later_output_cannot_be_committed_the_earlier_one_is_taken_back()
    {
        string tensor = _dir.File("o.safetensors"), png = _dir.File("o.png");
        File.WriteAllText(png, "exists");
        OutputFile[] outputs = [new(tensor, stream => stream.WriteByte(1)), new(png, stream => stream.WriteByte(2))];

        // Without --force the second rename fails after the first has happened.
        var act = () => OutputFiles.WriteAll(outputs, force: false, CancellationToken.None);

        act.Should().Throw<OutputUnwritableException>().Where(e => e.Message.StartsWith(png, StringComparison.Ordinal));
        File.ReadAllText(png).Should().Be("exists");
        Directory.GetFiles(_dir.Path).Should().Equal(png);
    }

    [Fact]
    public void A_write_that_fails_leaves_no_temporary_file()
    {
        string png = _dir.File("o.png");
        OutputFile[] outputs = [new(png, _ => throw new IOException("No space left on device : '/somewhere/.o.png.0.tmp'"))];

        var act = () => OutputFiles.WriteAll(outputs, force: false, CancellationToken.None);

        act.Should().Throw<OutputUnwritableException>().WithMessage($"{png}: cannot be written: No space left on device");
        Directory.GetFiles(_dir.Path).Should().BeEmpty();
    }
}
