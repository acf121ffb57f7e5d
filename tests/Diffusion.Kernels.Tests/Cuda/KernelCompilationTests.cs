using Diffusion.Kernels.Backends.Cuda;
using Diffusion.Kernels.Tests.Support;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>
/// Compiles every kernels/*.cu file with the project's own NVRTC interop for Ampere (sm_80) and Hopper (sm_90),
/// running ptxas verbosely, and checks what can be checked without a GPU: the code compiles, every entry point the
/// backend launches exists, and the hot kernels neither spill registers nor use a stack frame. Skipped when no
/// libnvrtc can be found, unless DIFFUSION_REQUIRE_NVRTC is set (CI sets it), in which case they fail.
/// </summary>
public sealed class KernelCompilationTests(ITestOutputHelper output)
{
    /// <summary>Every entry point CudaBackend launches, by file.</summary>
    public static readonly Dictionary<string, string[]> Entries = new()
    {
        ["conv2d.cu"] = ["conv2d_v1", "conv2d_v2_k1", "conv2d_v2_k3", "conv2d_v2_kn", "conv2d_v3_k1", "conv2d_v3_k3", "conv2d_v3_kn"],
        ["group_norm.cu"] = ["group_norm_v1", "group_norm_v2"],
        ["attention.cu"] = ["attention_v1", "attention_v2_q16", "attention_v2_q32", "attention_v3"],
        ["linear.cu"] = ["linear_v1", "linear_v2"],
        ["elementwise.cu"] = ["silu", "add_scaled", "upsample2x", "concat_channels", "timestep_embedding"],
        ["sampler.cu"] = ["sampler_step"],
    };

    /// <summary>
    /// Kernels whose speed matters, held to no spills and no stack. (timestep_embedding keeps a 32-byte frame: the
    /// accurate sinf/cosf argument reduction for huge arguments uses a local array; it runs once per step.)
    /// </summary>
    private static readonly HashSet<string> Hot =
    [
        "conv2d_v2_k1", "conv2d_v2_k3", "conv2d_v2_kn", "conv2d_v3_k1", "conv2d_v3_k3", "conv2d_v3_kn", "group_norm_v2", "attention_v2_q16", "attention_v2_q32",
        "attention_v3", "linear_v2", "silu", "add_scaled", "upsample2x", "concat_channels", "sampler_step",
    ];

    public static TheoryData<string, int> FilesAndArchitectures()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in Entries.Keys)
            foreach (int arch in new[] { 80, 90 })
                data.Add(file, arch);
        return data;
    }

    [Theory]
    [MemberData(nameof(FilesAndArchitectures))]
    public void Kernel_compiles_to_cubin_without_spills(string file, int architecture)
    {
        RequireNvrtc();
        var target = new KernelTarget(architecture, Cubin: true);
        var options = NvrtcCompiler.BaseOptions(target).Append("--ptxas-options=-v").ToList();
        string source = KernelSources.Read(file);

        var compiled = NvrtcCompiler.Compile(file, source, options, cubin: true);

        compiled.Image.Should().NotBeEmpty();
        var functions = PtxasReport.Parse(compiled.Log);
        foreach (var f in functions)
        {
            output.WriteLine($"{f.Architecture} {f.Name,-22} {f.Registers,3} registers  {f.SharedBytes,6} B static smem  " +
                $"stack {f.StackFrameBytes} B  spills {f.SpillStoreBytes}/{f.SpillLoadBytes} B");
        }
        functions.Select(f => f.Name).Should().BeEquivalentTo(Entries[file], "every launched entry point must be compiled");
        functions.Should().OnlyContain(f => f.Architecture == target.GpuArchitecture);
        foreach (var f in functions.Where(f => Hot.Contains(f.Name)))
        {
            f.SpillStoreBytes.Should().Be(0, $"{f.Name} on {f.Architecture} must not spill");
            f.SpillLoadBytes.Should().Be(0, $"{f.Name} on {f.Architecture} must not spill");
            f.StackFrameBytes.Should().Be(0, $"{f.Name} on {f.Architecture} must not use a stack frame");
        }
    }

    /// <summary>
    /// The half-precision kernels must really use tensor cores: the PTX holds the mma instruction and the
    /// round-to-nearest conversions, and the cubin for sm_80 keeps its double-buffered tiles within the 48 KB of
    /// static shared memory every block may use without opting in.
    /// </summary>
    [Theory]
    [InlineData(80)]
    [InlineData(90)]
    public void Conv2d_version_3_is_built_on_mma_sync(int architecture)
    {
        RequireNvrtc();
        foreach (var f in CompileOnTensorCores("conv2d.cu", architecture).Where(f => f.Name.StartsWith("conv2d_v3", StringComparison.Ordinal)))
        {
            f.SharedBytes.Should().Be(2 * 2 * 64 * 40 * sizeof(ushort), "two stages of a 64×40 half tile for weights and for pixels");
            f.Registers.Should().BeLessThanOrEqualTo(255);
        }
    }

    /// <summary>
    /// The same for attention version 3, whose tiles live in dynamic shared memory (sized by the head dimension on the
    /// host): no static shared memory, and its 256-column output rows fit in registers without spilling.
    /// </summary>
    [Theory]
    [InlineData(80)]
    [InlineData(90)]
    public void Attention_version_3_is_built_on_mma_sync(int architecture)
    {
        RequireNvrtc();
        var v3 = CompileOnTensorCores("attention.cu", architecture).Single(f => f.Name == "attention_v3");
        output.WriteLine($"{v3.Architecture} attention_v3: {v3.Registers} registers, spills {v3.SpillStoreBytes}/{v3.SpillLoadBytes} B");
        v3.SharedBytes.Should().Be(0, "Q, K and V tiles are dynamic shared memory");
        v3.Registers.Should().BeLessThanOrEqualTo(255);
    }

    /// <summary>
    /// Compiles a kernel file for <paramref name="architecture"/> to PTX, which must hold the mma instruction and the
    /// round-to-nearest half conversions, and to a cubin, whose ptxas report (registers, shared memory, spills per
    /// function) it returns.
    /// </summary>
    private static IReadOnlyList<PtxasFunction> CompileOnTensorCores(string file, int architecture)
    {
        string source = KernelSources.Read(file);
        var ptx = NvrtcCompiler.Compile(file, source, NvrtcCompiler.BaseOptions(new KernelTarget(architecture, Cubin: false)), cubin: false);
        var cubin = NvrtcCompiler.Compile(file, source,
            NvrtcCompiler.BaseOptions(new KernelTarget(architecture, Cubin: true)).Append("--ptxas-options=-v").ToList(), cubin: true);
        System.Text.Encoding.ASCII.GetString(ptx.Image)
            .Should().Contain("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32").And.Contain("cvt.rn.f16.f32");
        return PtxasReport.Parse(cubin.Log);
    }

    [Fact]
    public void Every_kernel_file_is_covered()
    {
        Directory.GetFiles(RepositoryPaths.Kernels, "*.cu").Select(Path.GetFileName)
            .Should().BeEquivalentTo(Entries.Keys, "a new kernel file must be added to the compilation tests");
    }

    [Fact]
    public void Ptx_is_produced_for_a_virtual_architecture()
    {
        RequireNvrtc();
        var target = new KernelTarget(80, Cubin: false);
        string source = KernelSources.Read("sampler.cu");

        var compiled = NvrtcCompiler.Compile("sampler.cu", source, NvrtcCompiler.BaseOptions(target), cubin: false);

        string ptx = System.Text.Encoding.ASCII.GetString(compiled.Image);
        ptx.Should().Contain(".target sm_80").And.Contain(".entry sampler_step");
        compiled.Image[^1].Should().Be(0, "cuModuleLoadData needs NUL-terminated PTX");
    }

    [Fact]
    public void A_compile_error_names_the_file_and_carries_the_log()
    {
        RequireNvrtc();
        var target = new KernelTarget(80, Cubin: true);
        const string broken = "extern \"C\" __global__ void k(float* y) { y[0] = undefined_name; }";

        var act = () => NvrtcCompiler.Compile("broken.cu", broken, NvrtcCompiler.BaseOptions(target), cubin: true);

        act.Should().Throw<KernelCompileException>()
            .Where(e => e.SourceFile == "broken.cu" && e.Message.StartsWith("broken.cu: ") && e.Log.Contains("undefined_name"));
    }

    [Fact]
    public void Nvrtc_reports_the_architectures_the_tests_compile_for()
    {
        RequireNvrtc();
        var archs = NvrtcCompiler.SupportedArchitectures();
        output.WriteLine($"NVRTC {NvrtcCompiler.Version()} supports {string.Join(", ", archs)}");
        archs.Should().Contain([80, 90]);
    }

    /// <summary>
    /// Set by .ci/run. A skip is a pass to CI, so without it a broken NVRTC install would quietly stop every kernel
    /// from being compiled; with it, the tests that need NVRTC fail and say why.
    /// </summary>
    internal const string RequireNvrtcVariable = "DIFFUSION_REQUIRE_NVRTC";

    /// <summary>The one place that decides what a test needing NVRTC does when it cannot be loaded.</summary>
    internal static void RequireNvrtc()
    {
        if (NvrtcCompiler.TryLoad(out string reason)) return;
        string? required = Environment.GetEnvironmentVariable(RequireNvrtcVariable);
        if (!string.IsNullOrEmpty(required) && required != "0")
            Assert.Fail($"{RequireNvrtcVariable}={required}, but {reason}");
        Assert.Skip(reason);
    }
}
