using Diffusion.Kernels.Backends.Cuda;
using Diffusion.Kernels.Backends.Cuda.Interop;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

public sealed class NvrtcLocatorTests
{
    [Fact]
    public void Newer_sonames_win_over_folder_order()
    {
        var present = new HashSet<string> { "/a/libnvrtc.so.11.2", "/b/libnvrtc.so.12", "/a/libnvrtc.so" };

        var candidates = NvrtcLocator.Candidates(["/a", "/b"], present.Contains, NvrtcLocator.LinuxSonames, overridePath: "").ToList();

        candidates.Take(3).Should().Equal("/b/libnvrtc.so.12", "/a/libnvrtc.so.11.2", "/a/libnvrtc.so");
        candidates.Skip(3).Should().Equal(NvrtcLocator.LinuxSonames, "bare sonames follow for the system loader");
    }

    [Fact]
    public void Explicit_path_comes_first()
    {
        var candidates = NvrtcLocator.Candidates(["/a"], _ => true, NvrtcLocator.LinuxSonames, overridePath: "/opt/my/libnvrtc.so.12").ToList();

        candidates[0].Should().Be("/opt/my/libnvrtc.so.12");
        candidates[1].Should().Be("/a/libnvrtc.so.13");
    }

    [Fact]
    public void Sonames_are_searched_newest_first()
    {
        NvrtcLocator.LinuxSonames.Should().StartWith(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"]);
        NvrtcLocator.LinuxSonames[^1].Should().Be("libnvrtc.so");
    }

    [Fact]
    public void Builtins_of_the_same_major_version_in_the_same_folder_are_chosen()
    {
        string[] files =
        [
            "/cuda/lib/libnvrtc-builtins.so.12.4", "/cuda/lib/libnvrtc-builtins.so.11.8", "/cuda/lib/libnvrtc-builtins.so.11.8.89",
            "/other/libnvrtc-builtins.so.11.9", "/cuda/lib/libnvrtc.so.11.2",
        ];

        NvrtcLocator.BuiltinsBeside("/cuda/lib/libnvrtc.so.11.2", files).Should().Be("/cuda/lib/libnvrtc-builtins.so.11.8.89");
        NvrtcLocator.BuiltinsBeside("/cuda/lib/libnvrtc.so.12", files).Should().Be("/cuda/lib/libnvrtc-builtins.so.12.4");
        NvrtcLocator.BuiltinsBeside("/cuda/lib/libnvrtc.so", files).Should().Be("/cuda/lib/libnvrtc-builtins.so.12.4", "unversioned takes the newest");
        NvrtcLocator.BuiltinsBeside("/elsewhere/libnvrtc.so.12", files).Should().BeNull();
    }
}

public sealed class KernelCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "diffusion-kernel-cache-test-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Key_changes_with_source_options_and_nvrtc_version()
    {
        string[] options = ["--gpu-architecture=sm_80", "-std=c++17"];
        string key = KernelCache.Key("src", options, (11, 8));

        key.Should().HaveLength(64).And.MatchRegex("^[0-9a-f]+$");
        KernelCache.Key("src", options, (11, 8)).Should().Be(key, "the key is deterministic");
        KernelCache.Key("src ", options, (11, 8)).Should().NotBe(key);
        KernelCache.Key("src", ["--gpu-architecture=sm_90", "-std=c++17"], (11, 8)).Should().NotBe(key);
        KernelCache.Key("src", options, (12, 0)).Should().NotBe(key);
        KernelCache.Key("src", ["--gpu-architecture=sm_80-std=c++17"], (11, 8)).Should().NotBe(key, "options are delimited");
    }

    [Fact]
    public void File_name_says_kernel_architecture_and_format()
    {
        string key = new('a', 64);
        KernelCache.FileName("conv2d.cu", new KernelTarget(90, true), key).Should().Be("conv2d-sm_90-aaaaaaaaaaaaaaaa.cubin");
        KernelCache.FileName("conv2d.cu", new KernelTarget(86, false), key).Should().Be("conv2d-compute_86-aaaaaaaaaaaaaaaa.ptx");
    }

    [Fact]
    public void Written_entries_read_back_and_leave_no_temporary_files()
    {
        var cache = new KernelCache(_dir);
        byte[] image = [1, 2, 3, 4];

        cache.TryRead("k.cubin").Should().BeNull();
        cache.TryWrite("k.cubin", image);
        cache.TryWrite("k.cubin", image); // a second writer racing for the same entry replaces it atomically

        cache.TryRead("k.cubin").Should().Equal(image);
        Directory.GetFiles(_dir).Select(Path.GetFileName).Should().Equal("k.cubin");
    }

    [Fact]
    public void An_unusable_cache_folder_is_skipped()
    {
        File.WriteAllText(_dir, "a file where the cache folder should be");
        var cache = new KernelCache(Path.Combine(_dir, "sub"));

        cache.TryWrite("k.cubin", [1]);

        cache.TryRead("k.cubin").Should().BeNull();
        new KernelCache(null).TryRead("k.cubin").Should().BeNull();
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
        else if (File.Exists(_dir)) File.Delete(_dir);
    }
}

public sealed class CudaErrorsTests
{
    [Fact]
    public void Out_of_memory_message_names_call_error_and_size()
    {
        var e = CudaErrors.Create(2, "cuMemAlloc_v2", "allocating " + CudaErrors.FormatBytes(1288490189), askDriver: false);

        e.Should().BeAssignableTo<DiffusionException>();
        e.Message.Should().Be("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory) allocating 1.2 GB");
        e.ErrorCode.Should().Be(2);
        e.ErrorName.Should().Be("CUDA_ERROR_OUT_OF_MEMORY");
        e.Call.Should().Be("cuMemAlloc_v2");
    }

    [Theory]
    [InlineData(100, "CUDA_ERROR_NO_DEVICE")]
    [InlineData(700, "CUDA_ERROR_ILLEGAL_ADDRESS")]
    [InlineData(218, "CUDA_ERROR_INVALID_PTX")]
    [InlineData(12345, "CUDA_ERROR_12345")]
    public void Codes_map_to_cuda_names(int code, string name) =>
        CudaErrors.Create(code, "cuLaunchKernel", null, askDriver: false).ErrorName.Should().Be(name);

    [Fact]
    public void Success_does_not_throw() => FluentActions.Invoking(() => CudaErrors.Check(0, "cuInit")).Should().NotThrow();

    [Theory]
    [InlineData(512, "512 bytes")]
    [InlineData(4096, "4.0 KB")]
    [InlineData(3 << 20, "3.0 MB")]
    public void Sizes_read_naturally(long bytes, string text) => CudaErrors.FormatBytes(bytes).Should().Be(text);
}

public sealed class KernelBuilderTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "diffusion-kernel-builder-test-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Second_build_comes_from_the_disk_cache_with_identical_bytes()
    {
        KernelCompilationTests.RequireNvrtc();
        var builder = new KernelBuilder(new KernelCache(_dir));

        var first = builder.Build("sampler.cu", 86, out bool firstCached);
        var second = new KernelBuilder(new KernelCache(_dir)).Build("sampler.cu", 86, out bool secondCached);

        firstCached.Should().BeFalse();
        secondCached.Should().BeTrue();
        second.Image.Should().Equal(first.Image);
        first.IsCubin.Should().BeTrue("NVRTC knows sm_86, so no JIT is left to the driver");
        Directory.GetFiles(_dir).Select(Path.GetFileName).Should().ContainSingle().Which.Should().StartWith("sampler-sm_86-").And.EndWith(".cubin");
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
