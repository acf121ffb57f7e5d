// The C# half of bench/side_by_side.py: one long-lived process hosting our CPU backend, ONNX Runtime and libtorch
// (through TorchSharp), all on the same synthetic weights and inputs, each runtime allocated and warmed once.
// bench/side_by_side.py writes the model files into a cache folder, starts this process, and drives it over
// stdin/stdout one block at a time, so blocks of every runtime (PyTorch's run in the Python process) alternate.
//
//   dotnet bench/SideBySide/bin/Release/net10.0/linux-x64/SideBySide.dll CACHE_DIR THREADS BATCH[,BATCH...]
//
// Commands, one per line; every answer is one JSON line on stdout:
//   check B PATH        runs each runtime once at batch B, writes ours to PATH (raw float32) and answers each
//                       peer's max abs difference from ours; libtorch's run has oneDNN's and MKL's verbose modes
//                       on, so the kernel lines they print to stdout just before the answer name the ISA it ran
//   time RUNTIME B N    N forwards of RUNTIME (ours|onnxruntime|libtorch) at batch B; answers their milliseconds
//   quit
using System.Diagnostics;
using System.Text.Json;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Bench;
using Diffusion.Kernels.Models;
using Diffusion.Kernels.SideBySide;

if (args.Length != 3)
{
    Console.Error.WriteLine("usage: SideBySide CACHE_DIR THREADS BATCH[,BATCH...] (run by bench/side_by_side.py)");
    return 2;
}
string cache = args[0];
int threads = int.Parse(args[1]);
int[] batches = args[2].Split(',').Select(int.Parse).ToArray();
string modelDir = Path.Combine(cache, "model");

// Threads are fixed before any runtime does parallel work: libtorch's inter-op pool cannot be resized later.
TorchSharp.torch.set_num_threads(threads);
TorchSharp.torch.set_num_interop_threads(1);

using var backend = new CpuBackend(threads);
using var ours = UNet2D.Load(modelDir, backend);
var forwards = new Dictionary<(string, int), IForward>();
foreach (int batch in batches)
{
    float[] sample = Raw.Read(Path.Combine(cache, $"sample_b{batch}.f32"), batch * 3 * 32 * 32);
    forwards[("ours", batch)] = new OursForward(ours, backend, sample, batch);
    forwards[("onnxruntime", batch)] = new OrtForward(Path.Combine(cache, $"unet_b{batch}.onnx"), threads, sample, batch);
    forwards[("libtorch", batch)] = new TorchForward(Path.Combine(cache, $"unet_b{batch}.pt"), sample, batch);
}

Reply(new
{
    device = backend.DeviceDescription,
    tier = Environment.GetEnvironmentVariable("DIFFUSION_CPU_TIER") ?? "(unset)",
    flops_per_image = CountFlopsPerImage(modelDir),
    onnxruntime = Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString(),
    libtorch = TorchSharp.torch.__version__,
    libtorch_threads = TorchSharp.torch.get_num_threads(),
    // What the script's --peer-isa set, as this process sees it, and the ATen dispatch level libtorch chose from it.
    peer_environment = PeerIsa.Environment(),
    libtorch_aten_capability = PeerIsa.AtenCapability(),
});

string? line;
while ((line = Console.In.ReadLine()) is not null)
{
    string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    if (words is ["quit"]) break;
    if (words.Length == 3 && words[0] == "check")
    {
        int batch = int.Parse(words[1]);
        float[] reference = forwards[("ours", batch)].RunOnce();
        Raw.Write(words[2], reference);
        float[] libtorch = [];
        PeerIsa.Verbosely(() => libtorch = forwards[("libtorch", batch)].RunOnce());
        Reply(new
        {
            onnxruntime = MaxAbsDiff(forwards[("onnxruntime", batch)].RunOnce(), reference),
            libtorch = MaxAbsDiff(libtorch, reference),
        });
    }
    else if (words.Length == 4 && words[0] == "time")
    {
        var forward = forwards[(words[1], int.Parse(words[2]))];
        var ms = new double[int.Parse(words[3])];
        for (int i = 0; i < ms.Length; i++)
        {
            long start = Stopwatch.GetTimestamp();
            forward.Run();
            ms[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Reply(new { ms });
    }
    else
    {
        Console.Error.WriteLine($"SideBySide: unknown command '{line}'");
        return 2;
    }
}
foreach (var forward in forwards.Values) forward.Dispose();
return 0;

static void Reply(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value));

static double MaxAbsDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

// Counted, not estimated: the FLOPs of every conv, linear and attention call of one batch-1 forward, convs counted as
// direct convolutions (what ONNX Runtime's and libtorch's rates are read against too).
static double CountFlopsPerImage(string modelDir)
{
    using var profiler = new ProfilingBackend(new CpuBackend(1));
    using var net = UNet2D.Load(modelDir, profiler);
    net.Forward(new Diffusion.Kernels.HostTensor(1, 3, 32, 32), [500f]);
    return profiler.Stats.Values.Sum(s => s.Flops);
}
