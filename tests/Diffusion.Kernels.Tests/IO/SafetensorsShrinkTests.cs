using Diffusion.Kernels.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.IO;

/// <summary>
/// A file that shrinks after it was opened (copied over in place, <c>rsync --inplace</c>, a re-download) used to
/// kill the process through its memory map (SIGBUS, exit 134). Reads now end early and say so.
/// </summary>
public sealed class SafetensorsShrinkTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.F16)]
    public void A_file_truncated_between_two_tensor_reads_is_a_typed_error(SafetensorsDType dtype)
    {
        string path = _dir.File("two.safetensors");
        var random = new Random(16);
        HostTensor Random(int n) => new([n], Enumerable.Range(0, n).Select(_ => (float)random.NextDouble()).ToArray());
        SafetensorsWriter.Write(path, [new("a", Random(1000)), new("b", Random(300_000))], dtype: dtype);

        using var file = SafetensorsFile.Open(path);
        file.ReadFloat32("a").Should().HaveCount(1000, "the first tensor is read before the file shrinks");
        long cut = file.FileSize - 100_000;
        using (var shrink = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) shrink.SetLength(cut);
        var act = () => file.ReadFloat32("b");

        act.Should().Throw<SafetensorsFormatException>()
            .Where(e => e.FilePath == path && e.Problem.Contains($"shrank to {cut} bytes while being read") && e.Problem.Contains("tensor 'b'"));
    }
}
