using System.Diagnostics;
using Diffusion.Kernels.Backends;
using Diffusion.Kernels.Backends.Cpu;
using Diffusion.Kernels.Backends.Gpu;
using Diffusion.Kernels.Gpu;

namespace Diffusion.Kernels.Tests.Support;

/// <summary>
/// The backends every kernel test runs on: one test body, a [Theory] over <see cref="Names"/>. The C# backend
/// appears once per ISA tier this host executes (cpu-avx512, cpu-avx2, cpu-v128; the tiers it cannot run are
/// reported once, by CpuTierTests, rather than as a skip in every test); "emulated" runs the GPU kernels (kernels/*.cs) on ILGPU's CPU accelerator, every version of every op
/// ("emulated" is version 1 of each op, "emulated-v2" version 2 where an op has one, ...); "cuda" runs them on an
/// NVIDIA GPU and is skipped, with the reason, where there is none. The emulator runs a GPU thread as .NET code
/// at a few microseconds each, so op cases larger than <see cref="EmulatedBudget"/> output values are not listed
/// for it (<see cref="WithBackends"/>): they are filtered in the open, not skipped.
/// </summary>
public static class TestBackends
{
    /// <summary>Output values an emulated test case may have.</summary>
    public const long EmulatedBudget = 1 << 14;

    private static readonly Dictionary<string, SharedBackend> Emulated = [];

    public static TheoryData<string> Names => new(AllNames().ToArray());

    /// <summary>cpu-avx512, cpu-avx2, cpu-v128: the tiers this host executes, fastest first.</summary>
    public static IEnumerable<string> CpuNames => CpuTiers.All.Where(CpuTiers.IsSupported).Select(t => "cpu-" + CpuTiers.Name(t));

    /// <summary>Every CPU tier, then every emulated version set, then cuda.</summary>
    public static IEnumerable<string> AllNames()
    {
        foreach (string cpu in CpuNames) yield return cpu;
        yield return "emulated";
        int newest = KernelCatalog.VersionedOps.Max(KernelCatalog.Latest);
        for (int v = 2; v <= newest; v++) yield return $"emulated-v{v}";
        yield return "cuda";
    }

    /// <summary>
    /// The backend for a test. Emulated backends are created once per version set and shared (an ILGPU context
    /// compiles every kernel anew); the returned handle holds it for this test alone and releases it on Dispose.
    /// </summary>
    public static IBackend Create(string name)
    {
        if (name.StartsWith("cpu-", StringComparison.Ordinal)) return new CpuBackend(tier: CpuTiers.Parse(name[4..], "test backend"));
        if (name.StartsWith("cuda", StringComparison.Ordinal))
        {
            var versions = name == "cuda" ? KernelVersions.Default : VersionsOf(name);
            if (GpuBackend.TryCreateCuda(out var cuda, out string reason, versions: versions)) return cuda!;
            Assert.Skip("no usable CUDA GPU: " + reason);
            throw new UnreachableException();
        }
        if (name.StartsWith("emulated", StringComparison.Ordinal))
        {
            SharedBackend shared;
            lock (Emulated)
            {
                if (!Emulated.TryGetValue(name, out shared!))
                    Emulated[name] = shared = new SharedBackend(GpuBackend.CreateEmulated(VersionsOf(name)));
            }
            return shared.Acquire();
        }
        throw new ArgumentException($"unknown test backend '{name}'", nameof(name));
    }

    /// <summary>"emulated" → version 1 of every op; "emulated-vN" (or "cuda-vN") → version N of each op that has it, its newest below N otherwise.</summary>
    public static KernelVersions VersionsOf(string name)
    {
        if (name == "emulated") return KernelVersions.Simple;
        int v = int.Parse(name[(name.IndexOf("-v", StringComparison.Ordinal) + 2)..], System.Globalization.CultureInfo.InvariantCulture);
        var versions = KernelVersions.Simple;
        foreach (string op in KernelCatalog.VersionedOps) versions = versions.With(op, Math.Min(v, KernelCatalog.Latest(op)));
        return versions;
    }

    /// <summary>Every combination of a backend name with one row of op parameters.</summary>
    public static IEnumerable<object[]> WithBackends(IEnumerable<object[]> cases) => WithBackends(cases, _ => 0);

    /// <summary>
    /// As above; rows whose <paramref name="outputs"/> exceed <see cref="EmulatedBudget"/> go to the CPU and CUDA
    /// backends only, and emulated version sets that include a half-precision version are left out.
    /// </summary>
    public static IEnumerable<object[]> WithBackends(IEnumerable<object[]> cases, Func<object[], long> outputs)
    {
        var rows = cases.ToList();
        foreach (string name in AllNames())
        {
            foreach (object[] row in rows)
            {
                if (name.StartsWith("emulated", StringComparison.Ordinal) && outputs(row) > EmulatedBudget) continue;
                // Half-precision versions miss float32 tolerances by design; their tests are HalfPrecision's rows.
                if (name.StartsWith("emulated-v", StringComparison.Ordinal) && VersionsOf(name).UsesHalfPrecision) continue;
                yield return [name, .. row];
            }
        }
    }

    /// <summary>
    /// As above, for the tests of versioned op <paramref name="op"/>: an "emulated-vN" row only where the op has a
    /// version N (a higher row would run the same kernels again), and none for its half-precision versions, which
    /// are held to a looser tolerance in tests of their own (<see cref="HalfPrecision"/>).
    /// </summary>
    public static IEnumerable<object[]> WithBackends(IEnumerable<object[]> cases, Func<object[], long> outputs, string op) =>
        WithBackends(cases, outputs, _ => op);

    /// <summary>As above, for tests whose rows belong to different ops (<paramref name="opOf"/> names a row's op).</summary>
    public static IEnumerable<object[]> WithBackends(IEnumerable<object[]> cases, Func<object[], long> outputs, Func<object[], string> opOf) =>
        WithBackends(cases, outputs).Where(row => RunsItsOwnFloatVersion((string)row[0], opOf(row[1..])));

    private static bool RunsItsOwnFloatVersion(string name, string op)
    {
        if (!name.StartsWith("emulated-v", StringComparison.Ordinal)) return true;
        if (!KernelCatalog.VersionedOps.Contains(op)) return false; // one version: "emulated" runs it
        int runs = VersionsOf(name).Of(op);
        return runs == int.Parse(name["emulated-v".Length..], System.Globalization.CultureInfo.InvariantCulture) && !KernelCatalog.IsHalf(op, runs);
    }

    /// <summary>
    /// The rows of <paramref name="op"/>'s half-precision tests: every case on "emulated-vN" and "cuda-vN" for each
    /// half version N (the cuda rows skip without a GPU). Half versions run tensor-core code whose emulation costs a
    /// few warp shuffles per multiply-add step, so their cases are listed separately and kept small.
    /// </summary>
    public static IEnumerable<object[]> HalfPrecision(string op, IEnumerable<object[]> cases)
    {
        var rows = cases.ToList();
        foreach (int version in KernelCatalog.Entries.Where(e => e.Op == op && e.Half).Select(e => e.Version).Distinct())
            foreach (string name in new[] { $"emulated-v{version}", $"cuda-v{version}" })
                foreach (object[] row in rows)
                    yield return [name, .. row];
    }

    /// <summary>
    /// One emulated backend used by one test at a time (xunit runs test classes in parallel; a backend takes one
    /// caller at a time). Disposing the handle releases the backend for the next test, it does not destroy it.
    /// </summary>
    private sealed class SharedBackend(GpuBackend backend)
    {
        private readonly SemaphoreSlim _turn = new(1, 1);

        public IBackend Acquire()
        {
            _turn.Wait();
            return new Handle(backend, _turn);
        }
    }

    private sealed class Handle(GpuBackend inner, SemaphoreSlim turn) : IBackend
    {
        private int _released;

        public string Name => inner.Name;
        public string DeviceDescription => inner.DeviceDescription;
        public long AvailableMemoryBytes => inner.AvailableMemoryBytes;
        public DeviceTensor Allocate(params int[] shape) => inner.Allocate(shape);
        public DeviceTensor Upload(ReadOnlySpan<float> data, params int[] shape) => inner.Upload(data, shape);
        public void Download(DeviceTensor source, Span<float> destination) => inner.Download(source, destination);
        public Conv2dWeights PrepareConv2d(Conv2dSpec spec, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias) => inner.PrepareConv2d(spec, weight, bias);
        public LinearWeights PrepareLinear(int inFeatures, int outFeatures, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias) =>
            inner.PrepareLinear(inFeatures, outFeatures, weight, bias);
        public void Conv2d(DeviceTensor x, Conv2dWeights weights, DeviceTensor y, in Conv2dEpilogue epilogue = default) => inner.Conv2d(x, weights, y, epilogue);
        public void GroupNorm(DeviceTensor x, DeviceTensor gamma, DeviceTensor beta, int groups, float eps, bool silu, DeviceTensor y) =>
            inner.GroupNorm(x, gamma, beta, groups, eps, silu, y);
        public void Linear(DeviceTensor x, LinearWeights weights, DeviceTensor y, bool siluInput = false) => inner.Linear(x, weights, y, siluInput);
        public void SiLU(DeviceTensor x, DeviceTensor y) => inner.SiLU(x, y);
        public void Add(DeviceTensor a, DeviceTensor b, DeviceTensor y, float scale = 1f) => inner.Add(a, b, y, scale);
        public void Upsample2x(DeviceTensor x, DeviceTensor y) => inner.Upsample2x(x, y);
        public void Concat(DeviceTensor a, DeviceTensor b, DeviceTensor y) => inner.Concat(a, b, y);
        public void TimestepEmbedding(ReadOnlySpan<float> timesteps, bool flipSinToCos, float freqShift, DeviceTensor y) =>
            inner.TimestepEmbedding(timesteps, flipSinToCos, freqShift, y);
        public void Attention(DeviceTensor qkv, DeviceTensor y, int heads) => inner.Attention(qkv, y, heads);
        public void SamplerStep(DeviceTensor sample, DeviceTensor modelOutput, DeviceTensor? noise, DeviceTensor? prevX0,
            DeviceTensor? x0Out, in SamplerStepCoefficients coefficients, DeviceTensor next) =>
            inner.SamplerStep(sample, modelOutput, noise, prevX0, x0Out, coefficients, next);
        public void Synchronize() => inner.Synchronize();

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) turn.Release();
        }
    }
}
