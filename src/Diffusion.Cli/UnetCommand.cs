using System.CommandLine;
using System.Globalization;
using Diffusion.Kernels;
using Diffusion.Kernels.IO;
using Diffusion.Kernels.Models;

namespace Diffusion.Cli;

/// <summary>
/// <c>diffuse unet</c>: one U-Net forward on a tensor from a file, written to a file. This is how users check our
/// numbers against PyTorch, so it does nothing but the forward: no scaling, no clamping.
/// </summary>
internal static class UnetCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "diffusers UNet or pipeline folder", Required = true };
        var input = new Option<string>("--input") { Description = "safetensors file with the sample (B, C, H, W): the tensor 'sample', or its only tensor", Required = true };
        var timestep = new Option<string>("--timestep") { Description = "one timestep for the whole batch, or one per batch item: T or T1,T2,...", Required = true };
        var output = new Option<string>("--out") { Description = "safetensors file to write; the output is stored as 'sample'", Required = true };
        var repeat = new Option<int>("--repeat")
        {
            Description = "run the forward this many times and print the median and best time per forward (benchmarking)",
            DefaultValueFactory = _ => 1,
        };
        var device = CliOptions.Device();
        var force = CliOptions.Force();
        var verbose = CliOptions.Verbose();
        var command = new Command("unet", "Run one U-Net forward pass on a tensor and save the result.")
        {
            model, input, timestep, output, repeat, device, force, verbose,
        };
        command.SetAction((parse, ct) => CliErrors.Run(parse.GetValue(verbose), () =>
        {
            string outPath = parse.GetValue(output)!;
            OutputFiles.EnsureWritable("--out", outPath, parse.GetValue(force), Console.Error);
            var sample = SampleFiles.Read(parse.GetValue(input)!);
            float[] timesteps = ParseTimesteps(parse.GetValue(timestep)!, sample.Shape[0]);

            using var backend = CliOptions.CreateBackend(parse.GetValue(device));
            int runs = parse.GetValue(repeat);
            if (runs < 1) throw new UsageException("--repeat must be at least 1");
            using var net = UNet2D.Load(parse.GetValue(model)!, backend, ct);
            net.EnsureMemoryFor(sample.Shape[0], sample.Shape[2], sample.Shape[3]);
            var result = TimedForward(net, sample, timesteps, runs, ct);
            // A forward is not interruptible, so Ctrl-C during the last one is honoured here: nothing is written.
            ct.ThrowIfCancellationRequested();
            RefuseNonFinite(result);
            OutputFiles.WriteAll([new(outPath, stream => SafetensorsWriter.WriteTo(stream, [new("sample", result)]))], parse.GetValue(force), ct);
            Console.Error.WriteLine($"wrote {outPath}: sample ({string.Join(", ", result.Shape)})");
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>
    /// Runs the forward <paramref name="runs"/> times on device tensors (uploads outside the timed region) and
    /// reports per-forward times in a fixed format that bench scripts parse.
    /// </summary>
    private static HostTensor TimedForward(UNet2D net, HostTensor sample, float[] timesteps, int runs, CancellationToken ct)
    {
        var backend = net.Backend;
        using var x = backend.Upload(sample.Data, sample.Shape);
        using var y = backend.Allocate(net.OutputShape(sample.Shape));
        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            ct.ThrowIfCancellationRequested();
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            net.Forward(x, timesteps, y);
            backend.Synchronize();
            times[i] = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        if (runs > 1)
        {
            Array.Sort(times);
            Console.Error.WriteLine(FormattableString.Invariant(
                $"forward: median {times[runs / 2]:F3} ms, best {times[0]:F3} ms over {runs} runs on {backend.DeviceDescription}"));
        }
        var result = new HostTensor(y.ShapeArray());
        backend.Download(y, result.Data);
        return result;
    }

    /// <summary>As generate does: a NaN or infinity is the model's failure (exit 7), not a result to hand to a comparison.</summary>
    private static void RefuseNonFinite(HostTensor result)
    {
        int bad = Array.FindIndex(result.Data, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new NonFiniteSampleException($"the U-Net output holds a non-finite value ({result.Data[bad]} at element {bad} of ({string.Join(", ", result.Shape)})); nothing was written");
    }

    internal static float[] ParseTimesteps(string text, int batch)
    {
        var values = text.Split(',', StringSplitOptions.TrimEntries).Select(part =>
            float.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out float t) && float.IsFinite(t) && t >= 0
                ? t
                : throw new UsageException($"--timestep: '{part}' is not a non-negative number")).ToArray();
        if (values.Length != 1 && values.Length != batch)
            throw new UsageException($"--timestep: give one timestep or one per batch item ({batch}), got {values.Length}");
        return values;
    }
}
