using Diffusion.Kernels.Gpu;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Cli;

/// <summary><c>diffuse kernels</c> as a process: the listing names every catalog entry; --ptx writes one readable PTX module per entry.</summary>
public sealed class KernelsCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Lists_every_kernel_entry_point_and_version()
    {
        var result = DiffuseProcess.Run("kernels");

        result.ExitCode.Should().Be(0, result.StandardError);
        foreach (var entry in KernelCatalog.Entries)
            result.StandardOutput.Should().Contain($"v{entry.Version} {entry.Name} ");
    }

    [Fact]
    public void Ptx_writes_one_module_per_entry_point_for_the_architecture_asked()
    {
        string folder = _dir.File("ptx");

        var result = DiffuseProcess.Run("kernels", "--ptx", folder, "--arch", "sm_90");

        result.ExitCode.Should().Be(0, result.StandardError);
        var files = Directory.GetFiles(folder, "*.ptx").Select(Path.GetFileName).ToList();
        files.Should().BeEquivalentTo(KernelCatalog.Entries.Select(PtxCompiler.FileName));
        foreach (string file in Directory.GetFiles(folder))
        {
            string text = File.ReadAllText(file);
            text.Should().Contain("compiled by ILGPU for sm_90").And.Contain(".version 7.8").And.Contain(".entry ");
        }
    }

    [Fact]
    public void Existing_ptx_files_are_kept_without_force()
    {
        string folder = _dir.File("ptx");
        Directory.CreateDirectory(folder);
        string first = Path.Combine(folder, PtxCompiler.FileName(KernelCatalog.Entries[0]));
        File.WriteAllText(first, "mine");

        var result = DiffuseProcess.Run("kernels", "--ptx", folder);

        result.ExitCode.Should().Be(5);
        result.StandardError.Should().Contain("--force");
        File.ReadAllText(first).Should().Be("mine");
        Directory.GetFiles(folder).Should().HaveCount(1);
    }

    [Theory]
    [InlineData("--ptx", "{dir}", "--arch", "sm_70")]
    [InlineData("--arch", "sm_90")]
    public void Usage_errors_exit_2_before_any_work(params string[] args)
    {
        var result = DiffuseProcess.Run(["kernels", .. args.Select(a => a.Replace("{dir}", _dir.File("ptx"), StringComparison.Ordinal))]);

        result.ExitCode.Should().Be(2);
        result.StandardError.Trim().Split('\n').Should().ContainSingle();
        Directory.Exists(_dir.File("ptx")).Should().BeFalse();
    }
}
