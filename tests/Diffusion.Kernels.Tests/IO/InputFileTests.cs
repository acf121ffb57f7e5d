using System.Diagnostics;
using Diffusion.Kernels.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.IO;

/// <summary>
/// Inputs are opened only when they are regular files, and without blocking: each kind of path that is not one
/// is refused at once, in a sentence saying what it is.
/// </summary>
public sealed class InputFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_fifo_is_refused_without_waiting_for_a_writer()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "FIFOs are refused by the Linux open path");
        string fifo = MakeFifo("weights.safetensors");
        var clock = Stopwatch.StartNew();

        var act = () => InputFile.OpenRead(fifo);

        act.Should().Throw<UnusableFileException>().Where(e => e.FilePath == fifo && e.Problem == "is a FIFO (named pipe), not a regular file");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "a blocking open(2) would never return");
    }

    [Fact]
    public void Dev_zero_a_folder_a_dangling_and_a_looping_link_each_say_what_they_are()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "device nodes are told apart by the Linux open path");
        string dangling = _dir.File("dangling");
        File.CreateSymbolicLink(dangling, "nowhere");
        string loop = _dir.File("loop");
        File.CreateSymbolicLink(loop, "loop");
        Directory.CreateDirectory(_dir.File("folder"));

        Problem("/dev/zero").Should().Be("is a character device, not a regular file");
        Problem(_dir.File("folder")).Should().Be("is a directory, not a regular file");
        Problem(dangling).Should().Be("is a symbolic link to 'nowhere', which does not exist");
        Problem(loop).Should().Be("is a symbolic link that loops (too many levels of links)");
        Problem(_dir.File("absent")).Should().Be("does not exist");
    }

    [Fact]
    public void A_link_to_a_regular_file_is_read_through()
    {
        string target = _dir.File("target");
        File.WriteAllText(target, "{}");
        string link = _dir.File("link");
        File.CreateSymbolicLink(link, target);

        InputFile.ReadAllBytes(link, 16, "tiny").Should().Equal("{}"u8.ToArray());
    }

    /// <summary>/proc files are regular files that report a length of 0: only counting what arrives catches them.</summary>
    [Fact]
    public void The_size_limit_counts_the_bytes_read_not_the_reported_length()
    {
        Assert.SkipUnless(File.Exists("/proc/self/status"), "needs procfs");
        new FileInfo("/proc/self/status").Length.Should().Be(0);

        var act = () => InputFile.ReadAllBytes("/proc/self/status", 16, "a test limit");

        act.Should().Throw<UnusableFileException>().Where(e => e.Problem == "holds more than 16 bytes; a test limit");
    }

    [Fact]
    public void A_file_at_the_limit_is_read_whole()
    {
        string path = _dir.File("exact");
        File.WriteAllBytes(path, new byte[100_000]);

        InputFile.ReadAllBytes(path, 100_000, "limit").Should().HaveCount(100_000);
        var over = () => InputFile.ReadAllBytes(path, 99_999, "limit");
        over.Should().Throw<UnusableFileException>();
    }

    private static string Problem(string path)
    {
        try
        {
            using var _ = InputFile.OpenRead(path);
        }
        catch (UnusableFileException e)
        {
            e.FilePath.Should().Be(path);
            return e.Problem;
        }
        throw new InvalidOperationException($"{path} was opened");
    }

    private string MakeFifo(string name)
    {
        string path = _dir.File(name);
        using var mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        mkfifo.ExitCode.Should().Be(0);
        return path;
    }
}
