using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Imaging;

public class PngMetadataTests
{
    private static readonly ImageMetadata Grid = new()
    {
        Model = "models/ddpm, cifar10",
        Scheduler = "ddim",
        Steps = 50,
        Eta = 0.25,
        Seed = (1UL << 63) + 7,
        Rng = "torch",
        Width = 28,
        Height = 28,
        BatchSize = 16,
        Grid = (4, 4),
        Scale = 4,
    };

    private static readonly Image8 Pixels = new(3, 2, 1, [0, 128, 255, 1, 2, 3]);

    [Fact]
    public void The_parameters_line_reads_like_other_generators_write_it()
    {
        Grid.ToParameters().Should().Be(
            "Steps: 50, Sampler: DDIM, Eta: 0.25, Seed: 9223372036854775815, RNG: torch, Size: 28x28, " +
            "Model: \"models/ddpm, cifar10\", Batch size: 16, Grid: 4x4");
        (Grid with { Scheduler = "euler-a", Grid = null, BatchIndex = 3, Seed = null, Rng = null, NoiseFile = "x.safetensors", Model = "default" })
            .ToParameters().Should().Be("Steps: 50, Sampler: Euler a, Noise: x.safetensors, Size: 28x28, Model: default, Batch size: 16, Batch pos: 3");
    }

    [Fact]
    public void Metadata_survives_the_png_round_trip()
    {
        using var folder = new TempDirectory();
        string path = folder.File("grid.png");
        var withUnicode = Grid with { Model = "modèles/ünet-€" };
        File.WriteAllBytes(path, Png.Encode(Pixels, withUnicode.ToTextChunks()));

        var chunks = PngText.Read(path);
        chunks.Select(c => c.Key).Should().Equal("parameters", "diffusion-kernels");
        chunks[0].Value.Should().Contain("Model: modèles/ünet-?", "tEXt is Latin-1: the euro sign cannot be written there");
        ImageMetadata.FromTextChunks(chunks, path).Should().Be(withUnicode, "the JSON chunk escapes every character");
    }

    [Fact]
    public void Python_reads_the_chunks_as_every_png_reader_does()
    {
        using var folder = new TempDirectory();
        string path = folder.File("image.png");
        File.WriteAllBytes(path, Png.Encode(Pixels, Grid.ToTextChunks()));
        const string script = """
            import json, struct, sys, zlib
            data = open(sys.argv[1], 'rb').read(); pos, out = 8, {}
            while pos < len(data):
                (n,) = struct.unpack('>I', data[pos:pos + 4]); kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
                assert zlib.crc32(kind + body) & 0xffffffff == struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])[0]
                if kind == b'tEXt':
                    key, text = body.split(b'\0', 1); out[key.decode('latin-1')] = text.decode('latin-1')
                pos += 12 + n
            meta = json.loads(out['diffusion-kernels'])
            print(out['parameters'].split(', ')[0], meta['seed'], meta['grid']['columns'], meta['batch_index'])
            """;
        var run = Process.Start(new ProcessStartInfo("python3", ["-c", script, path]) { RedirectStandardOutput = true })!;
        string output = run.StandardOutput.ReadToEnd();
        run.WaitForExit();
        output.Trim().Should().Be("Steps: 50 9223372036854775815 4 None");
    }

    [Fact]
    public void An_image_from_another_program_has_no_metadata_but_its_text_is_read()
    {
        var bytes = Png.Encode(Pixels, [new("parameters", "a photo of a cat\nSteps: 20, Sampler: Euler a, Seed: 1")]);
        var chunks = PngText.Read(new MemoryStream(bytes), "cat.png");
        chunks.Should().ContainSingle().Which.Value.Should().StartWith("a photo of a cat\n");
        ImageMetadata.FromTextChunks(chunks, "cat.png").Should().BeNull();
    }

    public static TheoryData<string, byte[], string> Damaged()
    {
        byte[] good = Png.Encode(Pixels, Grid.ToTextChunks());
        int text = IndexOf(good, "tEXt") - 4; // the first tEXt chunk's length field
        return new()
        {
            { "not a png", Encoding.ASCII.GetBytes("GIF89a........"), "*is not a PNG file*" },
            { "truncated", good[..(text + 20)], "*claims * bytes, but only * remain*" },
            { "no IEND", good[..IndexOf(good, "IEND")][..^4], "*truncated at byte *: no IEND chunk*" },
            { "oversized text chunk", WithLength(good, text, PngText.MaxTextChunkBytes + 1, grow: true), "*tEXt chunk at byte * holds 1048577 bytes, above our limit of 1048576*" },
            { "length beyond 2^31", WithLength(good, text, 0x80000000u, grow: false), "*claims 2147483648 bytes, above PNG's limit*" },
            { "length beyond the file", WithLength(good, text, 5_000_000, grow: false), "*claims 5000000 bytes, but only * remain*" },
            { "bad CRC", FlipByte(good, text + 10), "*tEXt chunk at byte * fails its CRC check*" },
            { "no keyword", WithTextData(good, text, "\0no keyword"), "*has no keyword of 1–79 characters*" },
            { "bad JSON", Png.Encode(Pixels, [new("diffusion-kernels", "{\"model\": 3")]), "*'diffusion-kernels' text chunk is not valid generation metadata*" },
            { "missing field", Png.Encode(Pixels, [new("diffusion-kernels", "{\"model\": \"m\"}")]), "*field 'scheduler' is missing*" },
        };
    }

    [Theory]
    [MemberData(nameof(Damaged))]
    public void A_damaged_or_hostile_file_is_one_typed_error(string what, byte[] bytes, string message)
    {
        var act = () => ImageMetadata.FromTextChunks(PngText.Read(new MemoryStream(bytes), "x.png"), "x.png");
        act.Should().Throw<PngFormatException>(what).WithMessage("x.png: " + message);
    }

    [Fact]
    public void More_text_chunks_than_the_limit_are_refused()
    {
        var many = Enumerable.Range(0, PngText.MaxTextChunks + 1).Select(i => new KeyValuePair<string, string>($"k{i}", "v")).ToList();
        var act = () => PngText.Read(new MemoryStream(Png.Encode(Pixels, many)), "x.png");
        act.Should().Throw<PngFormatException>().WithMessage("x.png: holds more than 64 tEXt chunks");
    }

    [Fact]
    public void A_missing_file_is_a_typed_error_naming_it()
    {
        var act = () => PngText.Read("/nonexistent/image.png");
        act.Should().Throw<PngFormatException>().WithMessage("/nonexistent/image.png: *");
    }

    [Theory]
    [InlineData("", "x")]
    [InlineData(" lead", "x")]
    [InlineData("k", "nul\0inside")]
    [InlineData("k", "euro €")]
    public void Text_a_png_cannot_hold_is_refused_when_writing(string keyword, string text)
    {
        var act = () => PngText.Encode(keyword, text);
        act.Should().Throw<ArgumentException>();
    }

    private static int IndexOf(byte[] bytes, string ascii) => bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(ascii));

    /// <summary>Rewrites a chunk's length field; with grow, pads the chunk so the file really holds that many bytes.</summary>
    private static byte[] WithLength(byte[] png, int at, uint length, bool grow)
    {
        var bytes = grow ? [.. png[..(at + 8)], .. new byte[length], .. png[(at + 8)..]] : (byte[])png.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(at), length);
        return bytes;
    }

    private static byte[] FlipByte(byte[] png, int at)
    {
        var bytes = (byte[])png.Clone();
        bytes[at] ^= 0x20;
        return bytes;
    }

    /// <summary>Replaces the data of the tEXt chunk at <paramref name="at"/>, with a correct CRC.</summary>
    private static byte[] WithTextData(byte[] png, int at, string data)
    {
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at));
        var chunk = new MemoryStream();
        var body = Encoding.Latin1.GetBytes(data);
        Png.WriteChunk(chunk, "tEXt", body);
        return [.. png[..at], .. chunk.ToArray(), .. png[(at + 12 + length)..]];
    }
}
