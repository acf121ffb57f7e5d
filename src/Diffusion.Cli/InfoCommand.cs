using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Diffusion.Kernels;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Imaging;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.Sampling;

namespace Diffusion.Cli;

/// <summary>
/// <c>diffuse info PATH</c>: what a model folder holds, checked. The weights are loaded and bound to the config,
/// so "info succeeds" means "this model will load".
/// </summary>
public static class InfoCommand
{
    public static Command Create()
    {
        var path = CliOptions.InputPathArgument("path", "PATH", "diffusers UNet or pipeline folder, the UNet's config.json, or a PNG diffuse generate wrote");
        var verbose = CliOptions.Verbose("print stack traces with errors");
        var command = new Command("info", "Describe a model (architecture, parameter count, dtypes, scheduler) or what made an image.") { path, verbose };
        command.SetAction((parse, ct) => Task.FromResult(ConsoleStreams.RequireOutput(
            Run(parse.GetValue(path)!, Console.Out, Console.Error, parse.GetValue(verbose), ct))));
        return command;
    }

    /// <summary>
    /// Prints the description to <paramref name="output"/>; a failure goes to <paramref name="error"/> as one line
    /// with the exit code of every other command (a malformed weights file is a bad model, 3).
    /// </summary>
    public static int Run(string path, TextWriter output, TextWriter error, bool verbose = false, CancellationToken cancellationToken = default) =>
        CliErrors.Execute(verbose, () =>
        {
            if (path.EndsWith(".png", StringComparison.OrdinalIgnoreCase) && !Directory.Exists(path))
            {
                var image = new StringWriter(CultureInfo.InvariantCulture);
                DescribeImage(path, image);
                output.Write(image.ToString());
                output.Flush();
                return ExitCodes.Success;
            }
            var folder = ModelFolder.Open(path);
            var checkpoint = UNet2DCheckpoint.Load(folder, cancellationToken);
            var text = new StringWriter(CultureInfo.InvariantCulture);
            Describe(folder, checkpoint, text);
            output.Write(text.ToString());
            output.Flush();
            return ExitCodes.Success;
        }, error);

    /// <summary>The image's generation metadata (<see cref="ImageMetadata"/>), or the text another program left in it.</summary>
    private static void DescribeImage(string path, TextWriter w)
    {
        var chunks = PngText.Read(path);
        var metadata = ImageMetadata.FromTextChunks(chunks, path);
        w.WriteLine($"Image       {path}");
        if (metadata is null)
        {
            if (chunks.Count == 0) throw new PngFormatException(path, "holds no text chunks, so nothing says what made it");
            foreach (var (keyword, text) in chunks) w.WriteLine($"{keyword,-11} {text.ReplaceLineEndings(" / ")}");
            w.WriteLine($"Re-run      not possible: no '{ImageMetadata.JsonKeyword}' chunk (not written by diffuse generate)");
            return;
        }
        w.WriteLine($"Parameters  {metadata.ToParameters()}");
        w.WriteLine($"Model       {metadata.Model}");
        string eta = metadata.Scheduler == "ddim" ? $", η {metadata.Eta.ToString(CultureInfo.InvariantCulture)}" : "";
        w.WriteLine($"Sampler     {metadata.Scheduler}, {metadata.Steps} steps{eta}");
        string noise = metadata.NoiseFile is { } file ? $"initial noise from {file}" : "";
        string seed = metadata.Seed is { } s ? $"seed {s} ({metadata.Rng})" : "";
        w.WriteLine($"Noise       {string.Join("; ", new[] { noise, seed }.Where(t => t.Length > 0))}");
        string layout = metadata.Grid is var (columns, rows) ? $"a {columns}×{rows} grid of the batch of {metadata.BatchSize} (row-major)"
            : $"image {metadata.BatchIndex} of a batch of {metadata.BatchSize}";
        w.WriteLine($"Images      {layout}, each {metadata.Width}×{metadata.Height}, shown {metadata.Scale}× enlarged");
        w.WriteLine($"Re-run      diffuse generate --from {path}");
    }

    private static void Describe(ModelFolder folder, UNet2DCheckpoint checkpoint, TextWriter w)
    {
        var config = folder.Config;
        long weightsBytes = new FileInfo(folder.WeightsPath).Length;
        w.WriteLine($"Model       {folder.RootPath}");
        w.WriteLine($"Config      {folder.ConfigPath}");
        w.WriteLine($"Weights     {folder.WeightsPath} ({weightsBytes / 1048576.0:F1} MiB, {weightsBytes:N0} bytes)");
        w.WriteLine($"Parameters  {checkpoint.ParameterCount:N0}");
        w.WriteLine("Dtypes      " + string.Join(", ", checkpoint.SourceDTypes.Values
            .GroupBy(d => d).OrderBy(g => g.Key).Select(g => $"{g.Key} ({g.Count()} tensors)")));
        using (var cpu = new CpuBackend()) w.WriteLine($"CPU         {cpu.DeviceDescription} (tier {CpuTiers.Name(cpu.Tier)})");
        w.WriteLine();
        DescribeArchitecture(config, w);
        w.WriteLine();
        DescribeScheduler(folder.SchedulerConfigPath, w);
    }

    private static void DescribeArchitecture(UNet2DConfig c, TextWriter w)
    {
        var channels = c.BlockOutChannels;
        int levels = channels.Count;
        string Size(int level) => c.SampleSize is int s ? $"{s >> level}×{s >> level}" : "-";
        string Attention(int ch) => c.AttentionHeads(ch) == 1 ? $"attention 1 head × {ch}" : $"attention {c.AttentionHeads(ch)} heads × {ch / c.AttentionHeads(ch)}";

        w.WriteLine($"Architecture  UNet2DModel, {(c.SampleSize is int size ? $"{size}×{size} samples" : "sample size not given")}, {c.InChannels} → {c.OutChannels} channels");
        w.WriteLine($"  time embedding  positional {channels[0]} → {c.TimeEmbeddingDim} (flip_sin_to_cos {Lower(c.FlipSinToCos)}, freq_shift {c.FreqShift:g})");
        w.WriteLine($"  norm            GroupNorm {c.NormNumGroups} groups, eps {c.NormEps:g}; activation SiLU");
        if (c.CenterInputSample) w.WriteLine("  input           centred: 2·x − 1");
        w.WriteLine($"  {"conv_in",-8} {"",-16} {Size(0),-9} {c.InChannels,5} → {channels[0]}");

        int output = channels[0];
        for (int i = 0; i < levels; i++)
        {
            int input = output;
            output = channels[i];
            var parts = new List<string> { Plural(c.LayersPerBlock, "resnet") };
            if (c.DownBlockHasAttention(i)) parts.Add(Attention(output));
            if (i < levels - 1) parts.Add($"downsample to {Size(i + 1)} (padding {c.DownsamplePadding})");
            w.WriteLine($"  {"down " + i,-8} {c.DownBlockTypes[i],-16} {Size(i),-9} {input,5} → {output,-5} {string.Join(", ", parts)}");
        }

        int bottom = channels[levels - 1];
        string mid = c.AddAttention ? $"resnet, {Attention(bottom)}, resnet" : "resnet, resnet";
        if (c.MidBlockScaleFactor != 1f) mid += $" (outputs ÷ {c.MidBlockScaleFactor})";
        w.WriteLine($"  {"mid",-8} {"",-16} {Size(levels - 1),-9} {bottom,5} → {bottom,-5} {mid}");

        output = bottom;
        for (int i = 0; i < levels; i++)
        {
            int input = output;
            output = channels[levels - 1 - i];
            var parts = new List<string> { Plural(c.LayersPerBlock + 1, "resnet") + " on skip concatenations" };
            if (c.UpBlockHasAttention(i)) parts.Add(Attention(output));
            if (i < levels - 1) parts.Add($"upsample to {Size(levels - 2 - i)}");
            w.WriteLine($"  {"up " + i,-8} {c.UpBlockTypes[i],-16} {Size(levels - 1 - i),-9} {input,5} → {output,-5} {string.Join(", ", parts)}");
        }
        w.WriteLine($"  {"out",-8} {"",-16} {Size(0),-9} {channels[0],5} → {c.OutChannels,-5} GroupNorm, SiLU, conv_out");
    }

    private static void DescribeScheduler(string? path, TextWriter w)
    {
        if (path == null)
        {
            w.WriteLine("Scheduler   none in this folder");
            return;
        }
        w.WriteLine($"Scheduler   {path}");
        // The same reader, limit and checks as generate's, so info succeeds exactly when sampling can start.
        string json = ConfigFiles.ReadText(path);
        SchedulerConfig.Parse(json, path);
        using (var document = ConfigFiles.ParseObject(json, path))
        {
            foreach (var property in document.RootElement.EnumerateObject())
            {
                string value = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()! : property.Value.GetRawText();
                value = string.Join(' ', value.Split((char[])['\n', '\r', ' '], StringSplitOptions.RemoveEmptyEntries));
                if (value.Length > 80) value = value[..77] + "...";
                w.WriteLine($"  {property.Name} = {value}");
            }
        }
    }

    private static string Lower(bool value) => value ? "true" : "false";

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";
}
