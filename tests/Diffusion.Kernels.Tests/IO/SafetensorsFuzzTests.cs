using System.Buffers.Binary;
using System.Text;
using Diffusion.Kernels.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.IO;

/// <summary>
/// Thousands of deterministic corruptions of a valid safetensors file. Each must either load (and then read
/// without error) or fail with <see cref="SafetensorsFormatException"/>: never another exception, never a
/// hang, and never an allocation out of proportion to the file.
/// </summary>
public class SafetensorsFuzzTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    /// <summary>Reading widens at most 1-byte elements to 4-byte floats; headers parse into a few times their size.</summary>
    private static long AllocationBound(long fileSize) => 16 * fileSize + (1 << 20);

    private static byte[] ValidFile(string directory)
    {
        string path = Path.Combine(directory, "valid.safetensors");
        SafetensorsWriter.WriteRaw(path,
        [
            new("conv.weight", SafetensorsDType.F32, [2, 3], new byte[24]),
            new("conv.bias", SafetensorsDType.F16, [3], [0, 60, 0, 188, 0, 0]),
            new("mask", SafetensorsDType.BOOL, [5], [1, 0, 1, 1, 0]),
            new("steps", SafetensorsDType.I64, [2], new byte[16]),
            new("scalar", SafetensorsDType.BF16, [], [128, 63]),
        ], new Dictionary<string, string> { ["format"] = "pt", ["source"] = "fuzz" });
        return File.ReadAllBytes(path);
    }

    private static IEnumerable<(string Kind, byte[] Bytes)> Cases(byte[] valid)
    {
        var random = new Random(20240611);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        int headerEnd = 8 + headerLength;
        string header = Encoding.UTF8.GetString(valid, 8, headerLength);
        byte[] data = valid[headerEnd..];

        for (int length = 0; length < valid.Length; length++)
            yield return ("truncated", valid[..length]);

        foreach (ulong forged in new ulong[] { 0, 1, 2, (ulong)headerLength - 1, (ulong)headerLength + 1, (ulong)valid.Length - 8,
                     (ulong)valid.Length, 1UL << 31, 1UL << 32, 100_000_000, 100_000_001, long.MaxValue, ulong.MaxValue })
        {
            var copy = (byte[])valid.Clone();
            BinaryPrimitives.WriteUInt64LittleEndian(copy, forged);
            yield return ("forged length", copy);
        }

        for (int i = 0; i < 4000; i++)
            yield return ("bit flips in header", HostileInput.FlipBits(valid, random, 1 + random.Next(4), headerEnd));
        for (int i = 0; i < 500; i++)
            yield return ("bit flips anywhere", HostileInput.FlipBits(valid, random, 1 + random.Next(8), valid.Length));

        for (int i = 0; i < 6000; i++)
        {
            string edited = header;
            int edits = 1 + random.Next(3);
            for (int e = 0; e < edits; e++) edited = HostileInput.EditJson(edited, random);
            var bytes = Encoding.UTF8.GetBytes(edited);
            // Mostly keep the prefix honest so the edit reaches the JSON checks; sometimes keep the stale one.
            yield return ("JSON edit", random.Next(4) == 0
                ? [.. valid[..8], .. bytes, .. data]
                : SafetensorsBytes.Build(bytes, data));
        }

        yield return ("deep nesting", SafetensorsBytes.Build("{\"a\":" + HostileInput.Nested(100_000) + "}"));
        yield return ("deep nesting", SafetensorsBytes.Build("{\"a\":{\"dtype\":\"F32\",\"shape\":" + HostileInput.Nested(50) + ",\"data_offsets\":[0,4]}}", new byte[4]));
        yield return ("deep objects", SafetensorsBytes.Build(HostileInput.Nested(10_000, "{\"a\":", "}", "{}")));
        yield return ("LFS pointer", Encoding.ASCII.GetBytes("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n"));
        yield return ("empty header", SafetensorsBytes.Build(""));
        yield return ("invalid UTF-8", SafetensorsBytes.Build([(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}'], []));
        yield return ("shape overflow", SafetensorsBytes.Build(
            "{\"a\":{\"dtype\":\"F64\",\"shape\":[1073741824,1073741824,1073741824,8],\"data_offsets\":[0,0]}}"));
        yield return ("zero-dim with huge dims", SafetensorsBytes.Build(
            "{\"a\":{\"dtype\":\"F64\",\"shape\":[0,2147483647,2147483647],\"data_offsets\":[0,0]}}"));
    }

    [Fact]
    public void Corrupted_files_load_or_fail_with_the_typed_exception()
    {
        using var dir = new TempDirectory();
        var valid = ValidFile(dir.Path);
        string path = dir.File("case.safetensors");
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        int tried = 0;
        long maxAllocated = 0;

        foreach (var (kind, bytes) in Cases(valid))
        {
            tried++;
            File.WriteAllBytes(path, bytes);
            var outcome = HostileInput.Run(() => OpenAndReadAll(path), e => e is SafetensorsFormatException f ? Classify(f.Problem) : null, Limit);
            counts[outcome.Class] = counts.GetValueOrDefault(outcome.Class) + 1;
            maxAllocated = Math.Max(maxAllocated, outcome.AllocatedBytes);
            if (outcome.Class.StartsWith("UNEXPECTED", StringComparison.Ordinal) || outcome.Class == "HANG")
                failures.Add($"{kind} #{tried}: {outcome.Class}");
            else if (outcome.AllocatedBytes > AllocationBound(bytes.Length))
                failures.Add($"{kind} #{tried}: allocated {outcome.AllocatedBytes} bytes for a {bytes.Length}-byte file");
        }

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"{tried} safetensors cases; largest allocation {maxAllocated} bytes");
        foreach (var (name, count) in counts) output?.WriteLine($"  {count,6}  {name}");
        tried.Should().BeGreaterThanOrEqualTo(10_000, "the issue asks for at least 10,000 mutations of the reader alone");
        counts.GetValueOrDefault("ok").Should().BeGreaterThan(0, "some mutations (in data bytes) leave a valid file");
        failures.Should().BeEmpty();
    }

    [Fact]
    public void A_100_MB_tensor_name_is_handled_within_the_header_limit()
    {
        using var dir = new TempDirectory();
        string path = dir.File("huge-name.safetensors");
        string name = new('n', 99_000_000);
        File.WriteAllBytes(path, SafetensorsBytes.Build("{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", new byte[4]));

        var act = () => SafetensorsFile.Open(path);

        act.Should().Throw<SafetensorsFormatException>()
            .Where(e => e.Problem.Contains("needs 8 bytes") && e.Message.Length < 1000, "the name is cut short in the message");
    }

    private static string OpenAndReadAll(string path)
    {
        using var file = SafetensorsFile.Open(path);
        foreach (var tensor in file.Tensors)
        {
            file.ReadFloat32(tensor.Name);
            file.ReadRaw(tensor.Name);
        }
        return "ok";
    }

    private static string Classify(string problem)
    {
        string[] phrases =
        [
            "not valid JSON", "not valid UTF-8", "not valid Unicode", "must be a JSON object", "shorter than", "header length", "Git LFS", "appears twice", "twice",
            "unknown dtype", "shape entry", "data_offsets", "overflows", "needs", "overlap", "gap", "trailing bytes",
            "past the data section", "metadata", "entry must be an object", "is missing or not",
        ];
        return "SafetensorsFormatException: " + (phrases.FirstOrDefault(problem.Contains) ?? "other");
    }
}
