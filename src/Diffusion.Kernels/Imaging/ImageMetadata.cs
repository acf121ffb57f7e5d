using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Diffusion.Kernels.Imaging;

/// <summary>
/// What made an image, stored in its PNG so the image can be described (<c>diffuse info</c>) and generated again
/// (<c>diffuse generate --from</c>). Two tEXt chunks carry it:
/// <list type="bullet">
/// <item><c>parameters</c>: one line in the form Stable Diffusion web UIs write and read
///   ("Steps: 50, Sampler: DDIM, Eta: 0, Seed: 3, RNG: torch, Size: 28x28, Model: default, Batch size: 16, Grid: 4x4");
///   a value holding a comma, colon or quote is written as a JSON string, as they do;</item>
/// <item><c>diffusion-kernels</c>: the same as a JSON object (ASCII, non-ASCII escaped), the one read back.</item>
/// </list>
/// A grid PNG holds the whole batch (image i at row i / columns, column i % columns) and says so: Grid is set and
/// BatchIndex is null; a PNG of one image of a batch has its BatchIndex.
/// </summary>
public sealed record ImageMetadata
{
    public const string ParametersKeyword = "parameters";

    public const string JsonKeyword = "diffusion-kernels";

    /// <summary>The model as the user named it (a folder path), or "default" for the embedded model.</summary>
    public required string Model { get; init; }

    /// <summary>The sampler's command-line name: ddpm, ddim, dpm++2m, euler-a.</summary>
    public required string Scheduler { get; init; }

    public required int Steps { get; init; }

    public double Eta { get; init; }

    /// <summary>The seed, or null when a noise file decided the noise.</summary>
    public ulong? Seed { get; init; }

    /// <summary>The stream the seed drove (torch, splitmix), or null with a noise file.</summary>
    public string? Rng { get; init; }

    /// <summary>The safetensors file the initial noise came from, when one did.</summary>
    public string? NoiseFile { get; init; }

    /// <summary>One generated image's size in model pixels (before any enlargement).</summary>
    public required int Width { get; init; }

    public required int Height { get; init; }

    public required int BatchSize { get; init; }

    /// <summary>This image's index in its batch; null for a grid of the whole batch.</summary>
    public int? BatchIndex { get; init; }

    /// <summary>Columns and rows of a grid image; null for a single image.</summary>
    public (int Columns, int Rows)? Grid { get; init; }

    /// <summary>Each model pixel is a Scale × Scale block of the PNG.</summary>
    public int Scale { get; init; } = 1;

    /// <summary>Both tEXt chunks, parameters first.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ToTextChunks() => [new(ParametersKeyword, ToParameters()), new(JsonKeyword, ToJson())];

    /// <summary>The web-UI style line.</summary>
    public string ToParameters()
    {
        var fields = new List<(string Key, string Value)> { ("Steps", Invariant(Steps)), ("Sampler", SamplerLabel(Scheduler)) };
        if (Scheduler == "ddim") fields.Add(("Eta", Invariant(Eta)));
        if (Seed is { } seed) fields.Add(("Seed", Invariant(seed)));
        if (Rng is { } rng) fields.Add(("RNG", rng));
        if (NoiseFile is { } noise) fields.Add(("Noise", noise));
        fields.Add(("Size", $"{Width}x{Height}"));
        fields.Add(("Model", Model));
        fields.Add(("Batch size", Invariant(BatchSize)));
        if (BatchIndex is { } index) fields.Add(("Batch pos", Invariant(index)));
        if (Grid is var (columns, rows)) fields.Add(("Grid", $"{columns}x{rows}"));
        string line = string.Join(", ", fields.Select(f => $"{f.Key}: {Quote(f.Value)}"));
        return new string(line.Select(c => c > 255 ? '?' : c).ToArray()); // tEXt is Latin-1; the JSON chunk keeps every character

    }

    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("model", Model);
            json.WriteString("scheduler", Scheduler);
            json.WriteNumber("steps", Steps);
            json.WriteNumber("eta", Eta);
            if (Seed is { } seed) json.WriteNumber("seed", seed); else json.WriteNull("seed");
            if (Rng is { } rng) json.WriteString("rng", rng); else json.WriteNull("rng");
            if (NoiseFile is { } noise) json.WriteString("noise", noise); else json.WriteNull("noise");
            json.WriteNumber("width", Width);
            json.WriteNumber("height", Height);
            json.WriteNumber("batch_size", BatchSize);
            if (BatchIndex is { } index) json.WriteNumber("batch_index", index); else json.WriteNull("batch_index");
            if (Grid is var (columns, rows))
            {
                json.WriteStartObject("grid");
                json.WriteNumber("columns", columns);
                json.WriteNumber("rows", rows);
                json.WriteString("order", "row-major: image i of the batch at row i / columns, column i % columns");
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("grid");
            }
            json.WriteNumber("scale", Scale);
            json.WriteEndObject();
        }
        return Encoding.ASCII.GetString(buffer.ToArray()); // the default encoder escapes every non-ASCII character
    }

    /// <summary>
    /// The metadata of a PNG's text chunks (<see cref="PngText.Read(string)"/>), or null when it has no
    /// <see cref="JsonKeyword"/> chunk (an image from another program). A chunk that is there but malformed is a
    /// <see cref="PngFormatException"/> naming the field.
    /// </summary>
    public static ImageMetadata? FromTextChunks(IEnumerable<KeyValuePair<string, string>> chunks, string path)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        string? text = chunks.Where(c => c.Key == JsonKeyword).Select(c => c.Value).FirstOrDefault();
        if (text is null) return null;
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FormatException("it is not a JSON object");
            var grid = Optional(root, "grid");
            return new ImageMetadata
            {
                Model = Required(root, "model").GetString()!,
                Scheduler = Required(root, "scheduler").GetString()!,
                Steps = Required(root, "steps").GetInt32(),
                Eta = Required(root, "eta").GetDouble(),
                Seed = Optional(root, "seed")?.GetUInt64(),
                Rng = Optional(root, "rng")?.GetString(),
                NoiseFile = Optional(root, "noise")?.GetString(),
                Width = Required(root, "width").GetInt32(),
                Height = Required(root, "height").GetInt32(),
                BatchSize = Required(root, "batch_size").GetInt32(),
                BatchIndex = Optional(root, "batch_index")?.GetInt32(),
                Grid = grid is { } g ? (Required(g, "columns").GetInt32(), Required(g, "rows").GetInt32()) : null,
                Scale = Optional(root, "scale")?.GetInt32() ?? 1,
            };
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new PngFormatException(path, $"its '{JsonKeyword}' text chunk is not valid generation metadata: {e.Message}");
        }
    }

    /// <summary>The web UI's sampler names where one exists.</summary>
    private static string SamplerLabel(string scheduler) => scheduler switch
    {
        "ddpm" => "DDPM",
        "ddim" => "DDIM",
        "dpm++2m" => "DPM++ 2M",
        "euler-a" => "Euler a",
        _ => scheduler,
    };

    private static string Quote(string value) =>
        value.IndexOfAny([',', ':', '"', '\n']) >= 0 ? JsonSerializer.Serialize(value) : value;

    private static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

    private static JsonElement Required(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : throw new FormatException($"field '{name}' is missing");

    private static JsonElement? Optional(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;
}
