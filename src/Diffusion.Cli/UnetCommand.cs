using System.CommandLine;
using System.Globalization;
using Diffusion.Kernels;
using Diffusion.Kernels.Backends;
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
        var model = CliOptions.InputPath("--model", "FOLDER", "diffusers UNet or pipeline folder");
        model.Required = true;
        var input = CliOptions.InputPath("--input", "FILE.safetensors", "the sample (B, C, H, W): tensor 'sample', or the file's only tensor");
        input.Required = true;
        var timestep = CliOptions.List("--timestep", "T[,T2,...]", "one timestep for the whole batch, or one per batch item", "a timestep ≥ 0",
            (string part, out float t) => float.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out t) && float.IsFinite(t) && t >= 0);
        timestep.Required = true;
        var output = CliOptions.OutputFile("--out", ".safetensors", "file to write; the output is stored as tensor 'sample'");
        output.Required = true;
        var repeat = CliOptions.WholeNumber("--repeat", "N", "run the forward N times and print the median and best time per forward (default: 1)", 1);
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
            float[] timesteps = parse.GetValue(timestep)!;
            if (timesteps.Length != 1 && timesteps.Length != sample.Shape[0])
                throw new UsageException($"--timestep: give one timestep or one per batch item ({sample.Shape[0]}), got {timesteps.Length}");

            using var backend = CliOptions.CreateBackend(parse.GetValue(device) ?? DeviceKind.Auto, parse.GetValue(verbose), Console.Error);
            using var net = UNet2D.Load(parse.GetValue(model)!, backend, ct);
            net.EnsureMemoryFor(sample.Shape[0], sample.Shape[2], sample.Shape[3]);
            var result = TimedForward(net, sample, timesteps, parse.GetValue(repeat) ?? 1, ct);
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
}
