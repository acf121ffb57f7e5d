using Diffusion.Kernels.Backends.Cuda;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cuda;

/// <summary>How a kernel file's shared headers reach NVRTC: spliced in, with #line directives keeping positions.</summary>
public class KernelSourcesTests
{
    [Fact]
    public void An_included_header_is_spliced_in_between_line_directives()
    {
        string source = "// k.cu\n#include \"h.cuh\"\n__global__ void k() {}\n";

        string spliced = KernelSources.Splice("k.cu", source, name => name == "h.cuh" ? "// h\n__device__ int f();\n" : throw new FileNotFoundException(name));

        spliced.Should().Be("// k.cu\n#line 1 \"h.cuh\"\n// h\n__device__ int f();\n#line 3 \"k.cu\"\n__global__ void k() {}\n");
    }

    [Fact]
    public void A_file_without_includes_is_unchanged()
    {
        const string source = "#include <cuda_fp16.h>\r\n__global__ void k() {}";
        KernelSources.Splice("k.cu", source, name => throw new FileNotFoundException(name)).Should().Be(source);
    }

    [Fact]
    public void A_header_outside_the_kernels_folder_is_refused()
    {
        var act = () => KernelSources.Splice("k.cu", "#include \"../secret.cuh\"\n", _ => "");
        act.Should().Throw<DiffusionException>().WithMessage("*../secret.cuh*");
    }

    [Theory]
    [InlineData("conv2d.cu")]
    [InlineData("attention.cu")]
    public void The_tensor_core_kernels_get_the_shared_helpers(string file)
    {
        string source = KernelSources.Read(file);
        source.Should().Contain("__device__ __forceinline__ void tc_mma_m16n8k16(").And.NotContain("#include \"tensor_cores.cuh\"");
    }
}
