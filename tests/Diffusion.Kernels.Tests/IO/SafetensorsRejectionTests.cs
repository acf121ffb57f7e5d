using System.Buffers.Binary;
using System.Text;
using Diffusion.Kernels.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.IO;

/// <summary>Every malformed file is refused with a <see cref="SafetensorsFormatException"/> naming the file and the problem.</summary>
public class SafetensorsRejectionTests
{
    private static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    public static TheoryData<string, string, int, string> MalformedHeaders => new()
    {
        // case name, header JSON, data bytes, a phrase the message must contain
        { "invalid JSON", "{\"a\":", 0, "not valid JSON" },
        { "header not an object", "[1,2]", 0, "must be a JSON object" },
        { "entry not an object", "{\"a\":5}", 0, "entry must be an object" },
        { "dtype not a string", "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'dtype' is missing or not a string" },
        { "dtype missing", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'dtype' is missing" },
        { "shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "'shape' is missing or not an array" },
        { "shape entry fractional", "{" + Entry("a", "F32", "[1.5]", 0, 4) + "}", 4, "shape entry 0 is not an integer" },
        { "shape entry a string", "{" + Entry("a", "F32", "[\"1\"]", 0, 4) + "}", 4, "shape entry 0 is not an integer" },
        { "offsets of three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "'data_offsets' is missing or not an array of two integers" },
        { "offset negative", "{" + Entry("a", "F32", "[1]", -4, 0) + "}", 4, "begin is not a non-negative" },
        { "offset beyond 64 bits", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, "end is not a non-negative" },
        { "metadata not an object", "{\"__metadata__\":[],\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'__metadata__' must be an object" },
        { "metadata value not a string", "{\"__metadata__\":{\"k\":1}," + Entry("a", "F32", "[1]", 0, 4) + "}", 4, "metadata 'k' must be a string" },
        { "unknown dtype", "{" + Entry("a", "F8_E4M3", "[1]", 0, 1) + "}", 1, "unknown dtype 'F8_E4M3'" },
        { "end past the data", "{" + Entry("a", "F32", "[2]", 0, 8) + "}", 4, "past the data section" },
        { "begin after end", "{" + Entry("a", "F32", "[0]", 8, 4) + "}", 8, "begin 8 is after end 4" },
        { "overlapping tensors", "{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("b", "F32", "[2]", 4, 12) + "}", 12, "overlap" },
        { "gap between tensors", "{" + Entry("a", "F32", "[1]", 0, 4) + "," + Entry("b", "F32", "[1]", 8, 12) + "}", 12, "leaves a gap" },
        { "data not starting at zero", "{" + Entry("a", "F32", "[1]", 4, 8) + "}", 8, "leaves a gap after byte 0" },
        { "trailing bytes", "{" + Entry("a", "F32", "[1]", 0, 4) + "}", 8, "trailing bytes" },
        { "shape does not match bytes", "{" + Entry("a", "F32", "[3]", 0, 8) + "}", 8, "needs 12 bytes but data_offsets [0, 8] hold 8" },
        { "shape overflows", "{" + Entry("a", "F64", "[2147483647,2147483647,2147483647]", 0, 8) + "}", 8, "overflows a 64-bit byte count" },
        { "negative dimension", "{" + Entry("a", "F32", "[-1]", 0, 4) + "}", 4, "shape entry 0 is negative" },
        { "dimension beyond int", "{" + Entry("a", "U8", "[4294967296]", 0, 4) + "}", 4, "larger than" },
        { "duplicate tensor names", "{" + Entry("a", "F32", "[1]", 0, 4) + "," + Entry("a", "F32", "[1]", 4, 8) + "}", 8, "tensor 'a': appears twice" },
        { "duplicate entry field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'dtype' appears twice" },
        { "duplicate metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "'__metadata__' twice" },
        { "lone surrogate escape", "{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not valid Unicode" },
        { "too deep", "{\"a\":{\"dtype\":\"F32\",\"shape\":[[[[[[[[1]]]]]]]],\"data_offsets\":[0,4]}}", 4, "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(MalformedHeaders))]
    public void Malformed_header_is_refused(string caseName, string header, int dataBytes, string phrase)
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.Build(header, new byte[dataBytes]));

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>(caseName)
            .Where(e => e.FilePath == path && e.Message.Contains(path) && e.Problem.Contains(phrase),
                $"the message should name the file and say \"{phrase}\"");
    }

    [Fact]
    public void Header_that_is_not_utf8_is_refused()
    {
        using var dir = new TempDirectory();
        string path = dir.File("latin1.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.Build([(byte)'{', (byte)'"', 0xE9, (byte)'"', (byte)':', (byte)'{', (byte)'}', (byte)'}'], []));

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem.Contains("not valid UTF-8"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void File_shorter_than_the_length_prefix_is_refused(int length)
    {
        using var dir = new TempDirectory();
        string path = dir.File("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem.Contains("shorter than the 8-byte"));
    }

    [Fact]
    public void Header_length_beyond_the_file_is_refused_without_allocating_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("long.safetensors");
        var bytes = SafetensorsBytes.Build("{}");
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 50_000_000);
        File.WriteAllBytes(path, bytes);
        long before = GC.GetAllocatedBytesForCurrentThread();

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem.Contains("larger than the rest of the file"));
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().BeLessThan(1_000_000);
    }

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(ulong.MaxValue)]
    public void Header_length_beyond_100_MB_is_refused(ulong length)
    {
        using var dir = new TempDirectory();
        string path = dir.File("huge.safetensors");
        var bytes = SafetensorsBytes.Build("{}");
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, length);
        File.WriteAllBytes(path, bytes);

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem.Contains("exceeds the 100000000-byte limit"));
    }

    [Fact]
    public void Git_lfs_pointer_is_recognised_and_explained()
    {
        using var dir = new TempDirectory();
        string path = dir.File("diffusion_pytorch_model.safetensors");
        File.WriteAllText(path, "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2f\nsize 143000000\n", Encoding.ASCII);

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem.Contains("Git LFS pointer") && e.Problem.Contains("git lfs pull"));
    }

    [Fact]
    public void Missing_file_is_a_typed_error()
    {
        using var dir = new TempDirectory();
        string path = dir.File("absent.safetensors");

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem == "does not exist");
    }

    [Fact]
    public void Asking_for_an_absent_tensor_names_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("one.safetensors");
        SafetensorsWriter.Write(path, [new("present", new HostTensor([1], [1f]))]);
        using var file = SafetensorsFile.Open(path);

        var act = () => file.ReadFloat32("absent");

        file.Contains("absent").Should().BeFalse();
        act.Should().Throw<SafetensorsFormatException>().Where(e => e.Message.Contains(path) && e.Problem.Contains("'absent'"));
    }
}
