using Diffusion.Kernels.Imaging;
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
}
