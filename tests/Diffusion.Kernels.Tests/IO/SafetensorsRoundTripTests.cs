using System.Buffers.Binary;
using System.Text;
using Diffusion.Kernels.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.IO;

public class SafetensorsRoundTripTests
{
    private static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 8 - 4)).ToArray();
    }

    [Fact]
    public void Float32_tensors_and_metadata_round_trip_exactly()
    {
        using var dir = new TempDirectory();
        string path = dir.File("t.safetensors");
        var a = new HostTensor([2, 3, 4], RandomValues(24, 1));
        var b = new HostTensor([5], RandomValues(5, 2));
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode + \"quotes\"" };

        SafetensorsWriter.Write(path, [new("a", a), new("b.weight", b)], metadata);

        using var file = SafetensorsFile.Open(path);
        file.Tensors.Select(t => t.Name).Should().Equal("a", "b.weight");
        file.Metadata.Should().BeEquivalentTo(metadata);
        file.Get("a").DType.Should().Be(SafetensorsDType.F32);
        file.Get("a").Shape.Should().Equal(2, 3, 4);
        file.ReadTensor("a").Data.Should().Equal(a.Data);
        file.ReadFloat32("b.weight").Should().Equal(b.Data);
        file.FileSize.Should().Be(new FileInfo(path).Length);
    }

    [Fact]
    public void Float16_round_trips_the_nearest_half_and_rounds_ties_to_even()
    {
        using var dir = new TempDirectory();
        string path = dir.File("h.safetensors");
        // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): ties go to the even mantissa, 1.
        // 1 + 3·2^-11 lies halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
        float[] ties = [1f + MathF.Pow(2, -11), 1f + 3 * MathF.Pow(2, -11), 70000f, -0f];
        float[] expectedTies = [1f, 1f + MathF.Pow(2, -9), float.PositiveInfinity, -0f];
        var values = RandomValues(100, 3);

        SafetensorsWriter.Write(path, [new("ties", new HostTensor([4], ties)), new("values", new HostTensor([10, 10], values))],
            dtype: SafetensorsDType.F16);

        using var file = SafetensorsFile.Open(path);
        file.Get("values").DType.Should().Be(SafetensorsDType.F16);
        file.Get("values").ByteLength.Should().Be(200);
        file.ReadFloat32("ties").Should().Equal(expectedTies);
        file.ReadFloat32("values").Should().Equal(values.Select(v => (float)(Half)v));
        var raw = file.ReadRaw("ties");
        BinaryPrimitives.ReadUInt16LittleEndian(raw).Should().Be(0x3C00, "1.0 in IEEE half precision");
    }

    [Fact]
    public void BFloat16_keeps_the_upper_half_rounded_to_nearest_even()
    {
        using var dir = new TempDirectory();
        string path = dir.File("b.safetensors");
        float[] values = [1f, 1f + MathF.Pow(2, -8), 1f + 3 * MathF.Pow(2, -8), 1f + 1.5f * MathF.Pow(2, -8), float.NaN, -2.5f];
        float[] expected = [1f, 1f, 1f + MathF.Pow(2, -6), 1f + MathF.Pow(2, -7), float.NaN, -2.5f];

        SafetensorsWriter.Write(path, [new("v", new HostTensor([6], values))], dtype: SafetensorsDType.BF16);

        using var file = SafetensorsFile.Open(path);
        file.Get("v").DType.Should().Be(SafetensorsDType.BF16);
        file.ReadFloat32("v").Should().Equal(expected);
        BinaryPrimitives.ReadUInt16LittleEndian(file.ReadRaw("v")).Should().Be(0x3F80);
    }

    [Fact]
    public void Float64_and_integer_dtypes_read_as_float32_values()
    {
        using var dir = new TempDirectory();
        string path = dir.File("ints.safetensors");
        double[] doubles = [Math.PI, -1e-3, 12345.5];
        var f64 = new byte[24];
        for (int i = 0; i < 3; i++) BinaryPrimitives.WriteDoubleLittleEndian(f64.AsSpan(8 * i), doubles[i]);
        var i64 = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(i64, -7);
        BinaryPrimitives.WriteInt64LittleEndian(i64.AsSpan(8), 1L << 40);
        var i16 = new byte[4];
        BinaryPrimitives.WriteInt16LittleEndian(i16, -300);
        BinaryPrimitives.WriteInt16LittleEndian(i16.AsSpan(2), 300);
        var u32 = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(u32, 4_000_000_000);

        SafetensorsWriter.WriteRaw(path,
        [
            new("i8", SafetensorsDType.I8, [3], [0xFF, 0x05, 0x80]), // odd size: every later tensor is unaligned
            new("f64", SafetensorsDType.F64, [3], f64),
            new("i64", SafetensorsDType.I64, [2], i64),
            new("i16", SafetensorsDType.I16, [2, 1], i16),
            new("u8", SafetensorsDType.U8, [2], [0, 255]),
            new("bool", SafetensorsDType.BOOL, [3], [0, 1, 2]),
            new("i32", SafetensorsDType.I32, [], [42, 0, 0, 0]),
            new("u32", SafetensorsDType.U32, [1], u32),
            new("empty", SafetensorsDType.F32, [0, 3], []),
        ]);

        using var file = SafetensorsFile.Open(path);
        file.ReadFloat32("i8").Should().Equal(-1f, 5f, -128f);
        file.ReadFloat32("f64").Should().Equal(doubles.Select(d => (float)d));
        file.ReadFloat32("i64").Should().Equal(-7f, (float)(1L << 40));
        file.ReadFloat32("i16").Should().Equal(-300f, 300f);
        file.ReadFloat32("u8").Should().Equal(0f, 255f);
        file.ReadFloat32("bool").Should().Equal(0f, 1f, 1f);
        file.ReadTensor("i32").Shape.Should().BeEmpty();
        file.ReadFloat32("i32").Should().Equal(42f);
        file.ReadFloat32("u32").Should().Equal(4_000_000_000f);
        file.ReadFloat32("empty").Should().BeEmpty();
        file.ReadRaw("i8").Should().Equal(0xFF, 0x05, 0x80);
        file.Get("f64").DataOffset.Should().Be(3);
    }

    /// <summary>The file is mapped, not read: opening 64 MiB of weights and reading a small tensor copies neither.</summary>
    [Fact]
    public void Opening_a_large_file_maps_it_instead_of_copying_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("large.safetensors");
        SafetensorsWriter.WriteRaw(path,
        [
            new("big", SafetensorsDType.F32, [16, 1 << 20], new byte[64 << 20]),
            new("small", SafetensorsDType.F32, [2], [0, 0, 128, 63, 0, 0, 0, 64]),
        ], null);

        long before = GC.GetAllocatedBytesForCurrentThread();
        float[] small;
        using (var file = SafetensorsFile.Open(path))
            small = file.ReadFloat32("small");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        small.Should().Equal(1f, 2f);
        allocated.Should().BeLessThan(1 << 20, "a copy of the file would allocate 64 MiB");
    }

    [Fact]
    public void Header_is_padded_with_spaces_to_a_multiple_of_eight()
    {
        using var dir = new TempDirectory();
        for (int nameLength = 1; nameLength <= 8; nameLength++)
        {
            string path = dir.File($"p{nameLength}.safetensors");
            SafetensorsWriter.Write(path, [new(new string('x', nameLength), new HostTensor([1], [1f]))]);

            var bytes = File.ReadAllBytes(path);
            long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            headerLength.Should().BeGreaterThan(0);
            (headerLength % 8).Should().Be(0);
            string header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
            header.TrimEnd(' ').Should().EndWith("}");
            (header.Length - header.TrimEnd(' ').Length).Should().BeLessThan(8);
            bytes.Length.Should().Be(8 + (int)headerLength + 4);
        }
    }

    [Fact]
    public void Writer_output_matches_a_hand_built_file_byte_for_byte()
    {
        using var dir = new TempDirectory();
        string path = dir.File("w.safetensors");
        string json = "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"b.0\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]}}";
        json += new string(' ', (8 - json.Length % 8) % 8);
        var expected = SafetensorsBytes.Build(json, SafetensorsBytes.Floats(1.5f, -2f, 0.25f));

        SafetensorsWriter.Write(path,
            [new("a", new HostTensor([2], [1.5f, -2f])), new("b.0", new HostTensor([1, 1], [0.25f]))],
            new Dictionary<string, string> { ["format"] = "pt" });

        File.ReadAllBytes(path).Should().Equal(expected);
    }

    [Fact]
    public void Reader_accepts_a_hand_built_file_with_unpadded_header_and_unknown_entry_fields()
    {
        using var dir = new TempDirectory();
        string path = dir.File("r.safetensors");
        string json = "{\"w\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\",\"extra\":[1]}}";
        File.WriteAllBytes(path, SafetensorsBytes.Build(json, SafetensorsBytes.Floats(3f, 4f)));

        using var file = SafetensorsFile.Open(path);

        file.ReadFloat32("w").Should().Equal(3f, 4f);
        file.Metadata.Should().BeEmpty();
    }

    [Fact]
    public void A_failed_write_leaves_the_previous_file_and_no_temporary_behind()
    {
        using var dir = new TempDirectory();
        string path = dir.File("keep.safetensors");
        SafetensorsWriter.Write(path, [new("old", new HostTensor([1], [7f]))]);
        var before = File.ReadAllBytes(path);

        var act = () => SafetensorsWriter.Write(path, [new("x", new HostTensor([1], [1f])), new("x", new HostTensor([1], [2f]))]);

        act.Should().Throw<ArgumentException>().WithMessage("*'x'*twice*");
        File.ReadAllBytes(path).Should().Equal(before);
        Directory.GetFiles(dir.Path).Should().ContainSingle();
    }

    [Fact]
    public void Writing_replaces_an_existing_file_in_one_step()
    {
        using var dir = new TempDirectory();
        string path = dir.File("out.safetensors");
        SafetensorsWriter.Write(path, [new("old", new HostTensor([1], [7f]))]);

        SafetensorsWriter.Write(path, [new("new", new HostTensor([2], [1f, 2f]))]);

        using var file = SafetensorsFile.Open(path);
        file.Tensors.Select(t => t.Name).Should().Equal("new");
        Directory.GetFiles(dir.Path).Should().ContainSingle();
    }

    [Fact]
    public void Writer_refuses_a_dtype_it_cannot_produce_from_float32()
    {
        using var dir = new TempDirectory();
        var act = () => SafetensorsWriter.Write(dir.File("x.safetensors"), [new("a", new HostTensor([1], [1f]))], dtype: SafetensorsDType.I32);
        act.Should().Throw<ArgumentException>().WithMessage("*I32*");
    }

    [Fact]
    public void Reads_after_dispose_throw()
    {
        using var dir = new TempDirectory();
        string path = dir.File("d.safetensors");
        SafetensorsWriter.Write(path, [new("a", new HostTensor([1], [1f]))]);
        var file = SafetensorsFile.Open(path);
        file.Dispose();

        var act = () => file.ReadFloat32("a");

        act.Should().Throw<ObjectDisposedException>();
    }
}
