using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Imaging;

public sealed class AtomicFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("diffuse-atomic-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void A_failing_write_leaves_neither_a_temporary_file_nor_a_changed_destination()
    {
        string path = Path.Combine(_folder, "out.png");
        File.WriteAllText(path, "old");
        var act = () => AtomicFile.Write(path, overwrite: true, stream =>
        {
            stream.Write("half"u8);
            throw new OperationCanceledException();
        });
        act.Should().Throw<OperationCanceledException>();
        Directory.GetFiles(_folder).Should().Equal(path);
        File.ReadAllText(path).Should().Be("old");
    }

    [Fact]
    public void Without_overwrite_an_existing_file_is_kept()
    {
        string path = Path.Combine(_folder, "out.png");
        File.WriteAllText(path, "old");
        var act = () => AtomicFile.WriteAllBytes(path, "new"u8, overwrite: false);
        act.Should().Throw<IOException>();
        Directory.GetFiles(_folder).Should().Equal(path);
        File.ReadAllText(path).Should().Be("old");
    }

    [Fact]
    public void The_temporary_file_lives_beside_the_destination_and_is_renamed_over_it()
    {
        string path = Path.Combine(_folder, "out.png");
        File.WriteAllText(path, "old");
        string? seen = null;
        AtomicFile.Write(path, overwrite: true, stream =>
        {
            seen = ((FileStream)stream).Name;
            stream.Write("new"u8);
            File.ReadAllText(path).Should().Be("old", "the destination is untouched until the rename");
        });
        Path.GetDirectoryName(seen).Should().Be(_folder);
        File.Exists(seen).Should().BeFalse();
        File.ReadAllText(path).Should().Be("new");
    }

    /// <summary>A legal 250-byte name must not fail because ".NAME.GUID.tmp" is longer than the 255-byte limit.</summary>
    [Theory]
    [InlineData(250, 'a')]
    [InlineData(120, 'é')] // two UTF-8 bytes each: the stem is cut at a character boundary
    public void The_temporary_name_fits_the_file_name_limit(int length, char letter)
    {
        string path = Path.Combine(_folder, new string(letter, length));

        string temporary = Path.GetFileName(AtomicFile.TemporaryPathFor(path));
        AtomicFile.WriteAllBytes(path, "content"u8, overwrite: false);

        System.Text.Encoding.UTF8.GetByteCount(temporary).Should().BeLessThanOrEqualTo(AtomicFile.MaxNameBytes);
        temporary.Should().StartWith("." + new string(letter, 10)).And.EndWith(".tmp");
        Directory.GetFiles(_folder).Should().Equal(path);
    }

    [Fact]
    public void A_fifo_in_the_destinations_place_is_never_replaced()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "file kinds are told apart on Linux");
        string fifo = Path.Combine(_folder, "out.png");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])) mkfifo.WaitForExit();

        var act = () => AtomicFile.WriteAllBytes(fifo, "png"u8, overwrite: true);

        act.Should().Throw<UnusableFileException>().Where(e => e.Problem.StartsWith("is a FIFO (named pipe); only a regular file", StringComparison.Ordinal));
        PosixFile.KindOf(fifo, followLinks: false).Should().Be(FileKind.Fifo);
        Directory.GetFiles(_folder).Should().Equal(fifo);
    }

    /// <summary>A link is replaced itself when it points at a file or nowhere; pointing at a FIFO or device (/dev/stdout) it is refused.</summary>
    [Fact]
    public void A_symbolic_link_is_replaced_unless_it_points_at_a_special_file()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "file kinds are told apart on Linux");
        string target = Path.Combine(_folder, "target.png"), toFile = Path.Combine(_folder, "to-file.png");
        File.WriteAllText(target, "old");
        File.CreateSymbolicLink(toFile, target);
        string fifo = Path.Combine(_folder, "fifo"), toFifo = Path.Combine(_folder, "to-fifo.png");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])) mkfifo.WaitForExit();
        File.CreateSymbolicLink(toFifo, fifo);

        AtomicFile.WriteAllBytes(toFile, "new"u8, overwrite: true);
        var act = () => AtomicFile.WriteAllBytes(toFifo, "new"u8, overwrite: true);

        File.ReadAllText(toFile).Should().Be("new");
        PosixFile.KindOf(toFile, followLinks: false).Should().Be(FileKind.Regular, "the link itself was replaced");
        File.ReadAllText(target).Should().Be("old", "its target was not written through");
        act.Should().Throw<UnusableFileException>().Where(e => e.Problem.StartsWith("is a symbolic link to a FIFO (named pipe)", StringComparison.Ordinal));
        PosixFile.KindOf(toFifo, followLinks: false).Should().Be(FileKind.SymbolicLink);
    }

    [Fact]
    public void A_device_node_in_the_destinations_place_is_never_replaced()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && Environment.UserName == "root", "mknod needs root");
        string node = Path.Combine(_folder, "null");
        using (var mknod = System.Diagnostics.Process.Start("mknod", [node, "c", "1", "3"]))
        {
            mknod.WaitForExit();
            Assert.SkipUnless(mknod.ExitCode == 0, "mknod is not permitted here (no CAP_MKNOD)");
        }

        var act = () => AtomicFile.WriteAllBytes(node, "png"u8, overwrite: true);

        act.Should().Throw<UnusableFileException>().Where(e => e.Problem.StartsWith("is a character device", StringComparison.Ordinal));
        PosixFile.KindOf(node, followLinks: false).Should().Be(FileKind.CharacterDevice);
    }

    [Fact]
    public void Stale_temporaries_are_removed_and_one_being_written_is_kept()
    {
        string path = Path.Combine(_folder, "out.png");
        string stale = Path.Combine(_folder, $".out.png.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(stale, "half a png from a killed run");
        string unrelated = Path.Combine(_folder, ".out.png.notours.tmp");
        File.WriteAllText(unrelated, "someone else's");
        using var live = AtomicFile.Create(path);

        var removed = AtomicFile.RemoveStaleTemporaries(path);

        removed.Should().Equal(stale);
        File.Exists(live.TemporaryPath).Should().BeTrue("a write in progress holds its lock");
        File.Exists(unrelated).Should().BeTrue("only our own naming pattern is touched");
    }
}
