using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using Diffusion.Kernels.Imaging;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Imaging;

public class PngTests
{
    /// <summary>
    /// An independent decoder: Python's zlib and struct only. Checks every chunk's CRC, inflates IDAT, undoes all
    /// five PNG filters and prints the header and pixels as JSON.
    /// </summary>
    private const string PythonDecoder = """
        import json, struct, sys, zlib
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
        pos, chunks = 8, []
        while pos < len(data):
            (length,) = struct.unpack('>I', data[pos:pos + 4])
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            (crc,) = struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])
            assert zlib.crc32(kind + body) & 0xffffffff == crc, 'crc of ' + kind.decode()
            chunks.append((kind, body))
            pos += 12 + length
        assert chunks[0][0] == b'IHDR' and chunks[-1][0] == b'IEND' and chunks[-1][1] == b''
        w, h, depth, color, comp, filt, inter = struct.unpack('>IIBBBBB', chunks[0][1])
        channels = {0: 1, 2: 3}[color]
        raw = zlib.decompress(b''.join(body for kind, body in chunks if kind == b'IDAT'))
        stride = w * channels
        assert len(raw) == h * (stride + 1), 'scanline bytes'
        rows, prev = [], bytearray(stride)
        for y in range(h):
            f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                if f == 1: line[i] = (line[i] + a) & 255
                elif f == 2: line[i] = (line[i] + b) & 255
                elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
                else: assert f == 0, 'filter'
            rows.append(list(line)); prev = line
        print(json.dumps({'width': w, 'height': h, 'depth': depth, 'color': color, 'interlace': inter, 'pixels': sum(rows, [])}))
        """;

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void An_independent_decoder_reads_back_every_pixel(int channels)
    {
        var image = RandomImage(channels, width: 13, height: 7, seed: channels);
        string folder = Directory.CreateTempSubdirectory("diffuse-png-").FullName;
        try
        {
            string path = Path.Combine(folder, "image.png");
            File.WriteAllBytes(path, Png.Encode(image));
            using var decoded = JsonDocument.Parse(RunPython(path, folder));
            var root = decoded.RootElement;
            root.GetProperty("width").GetInt32().Should().Be(13);
            root.GetProperty("height").GetInt32().Should().Be(7);
            root.GetProperty("depth").GetInt32().Should().Be(8);
            root.GetProperty("color").GetInt32().Should().Be(channels == 1 ? 0 : 2);
            root.GetProperty("interlace").GetInt32().Should().Be(0);
            root.GetProperty("pixels").EnumerateArray().Select(p => (byte)p.GetInt32()).Should().Equal(image.Pixels);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The same check in C#: chunk layout, CRCs, and the inflated scanlines.</summary>
    [Fact]
    public void Chunks_carry_valid_crcs_and_idat_inflates_to_filtered_scanlines()
    {
        var image = RandomImage(3, width: 5, height: 4, seed: 9);
        byte[] png = Png.Encode(image);

        png.AsSpan(0, 8).ToArray().Should().Equal(0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A);
        var chunks = new List<(string Type, byte[] Data)>();
        for (int pos = 8; pos < png.Length;)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            var typeAndData = png.AsSpan(pos + 4, 4 + length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos + 8 + length));
            crc.Should().Be(ReferenceCrc(typeAndData));
            chunks.Add((System.Text.Encoding.ASCII.GetString(typeAndData[..4]), typeAndData[4..].ToArray()));
            pos += 12 + length;
        }
        chunks.Select(c => c.Type).Should().Equal("IHDR", "IDAT", "IEND");
        chunks[0].Data.Should().Equal(0, 0, 0, 5, 0, 0, 0, 4, 8, 2, 0, 0, 0);

        using var inflated = new MemoryStream();
        using (var zlib = new ZLibStream(new MemoryStream(chunks[1].Data), CompressionMode.Decompress)) zlib.CopyTo(inflated);
        byte[] raw = inflated.ToArray();
        raw.Should().HaveCount(4 * (1 + 15));
        for (int y = 0; y < 4; y++)
        {
            raw[y * 16].Should().Be(0, "filter None");
            raw.AsSpan(y * 16 + 1, 15).ToArray().Should().Equal(image.Pixels.AsSpan(y * 15, 15).ToArray());
        }
    }

    [Fact]
    public void Crc32_matches_the_standard_check_values()
    {
        Crc32.Compute("123456789"u8).Should().Be(0xCBF43926u);
        Crc32.Compute("IEND"u8).Should().Be(0xAE426082u, "every PNG ends with this CRC");
    }

    [Fact]
    public void Save_writes_a_grid_of_a_batch()
    {
        string folder = Directory.CreateTempSubdirectory("diffuse-png-").FullName;
        try
        {
            string path = Path.Combine(folder, "grid.png");
            var samples = new HostTensor([5, 1, 3, 2], Enumerable.Range(0, 30).Select(i => i / 15f - 1).ToArray());
            Png.Save(path, samples);
            using var decoded = JsonDocument.Parse(RunPython(path, folder));
            // 5 images → 3 columns × 2 rows of 2×3 pixels with 2-pixel gutters.
            decoded.RootElement.GetProperty("width").GetInt32().Should().Be(3 * 2 + 2 * 2);
            decoded.RootElement.GetProperty("height").GetInt32().Should().Be(2 * 3 + 2);
            decoded.RootElement.GetProperty("pixels").EnumerateArray().Select(p => (byte)p.GetInt32())
                .Should().Equal(ImageGrid.FromSamples(samples).Pixels);
            Directory.GetFiles(folder).Should().Equal(path);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static Image8 RandomImage(int channels, int width, int height, int seed)
    {
        var pixels = new byte[width * height * channels];
        new Random(seed).NextBytes(pixels);
        return new Image8(width, height, channels, pixels);
    }

    private static uint ReferenceCrc(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    private static string RunPython(string pngPath, string folder)
    {
        string script = Path.Combine(folder, "decode.py");
        File.WriteAllText(script, PythonDecoder);
        var start = new ProcessStartInfo("python3", [script, pngPath]) { RedirectStandardOutput = true, RedirectStandardError = true };
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Assert.Skip("python3 is not on PATH; the C# decoder test still checks the file");
            throw;
        }
        using (process)
        {
            string output = process.StandardOutput.ReadToEnd();
            string error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            process.ExitCode.Should().Be(0, error);
            File.Delete(script);
            return output;
        }
    }
}
