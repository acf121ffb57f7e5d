using System.CommandLine;
using System.Globalization;
using Diffusion.Kernels.Gpu;
using Diffusion.Kernels.Imaging;

namespace Diffusion.Cli;

/// <summary>
/// <c>diffuse kernels</c>: the GPU kernels (kernels/*.cs) and their versions, from <see cref="KernelCatalog"/>;
/// with <c>--ptx DIR</c>, the PTX ILGPU makes of each for <c>--arch</c>, for people who want to read what their C#
/// became. Needs no GPU.
/// </summary>
public static class KernelsCommand
{
    public static Command Create()
    {
        var ptx = new Option<string?>("--ptx") { Description = "write each kernel's PTX to this folder (created if missing), one .ptx file per entry point" };
        var arch = new Option<string>("--arch")
        {
            Description = $"GPU architecture for --ptx: {string.Join(", ", PtxCompiler.Architectures)}",
            DefaultValueFactory = _ => PtxCompiler.Architectures[0],
        };
        var force = CliOptions.Force();
        var verbose = CliOptions.Verbose();
        var command = new Command("kernels", "List the GPU kernels and their versions; --ptx writes their PTX.") { ptx, arch, force, verbose };
        command.SetAction((parse, ct) => CliErrors.Run(parse.GetValue(verbose), () =>
            Run(parse.GetValue(ptx), parse.GetValue(arch)!, parse.GetResult(arch) is { Implicit: false }, parse.GetValue(force), Console.Out, ct)));
        return command;
    }

    public static int Run(string? ptxFolder, string architecture, bool architectureGiven, bool force, TextWriter output, CancellationToken cancellationToken)
    {
        if (!PtxCompiler.Architectures.Contains(architecture))
            throw new UsageException($"--arch: '{architecture}' is not one of {string.Join(", ", PtxCompiler.Architectures)}");
        if (ptxFolder is null)
        {
            if (architectureGiven) throw new UsageException("--arch only applies with --ptx DIR");
            List(output);
            return ExitCodes.Success;
        }

        if (File.Exists(ptxFolder)) throw new UsageException($"--ptx: {ptxFolder} is a file, not a folder");
        var targets = KernelCatalog.Entries.Select(e => (Entry: e, Path: Path.Combine(ptxFolder, PtxCompiler.FileName(e)))).ToList();
        foreach (var (_, path) in targets) OutputFiles.EnsureWritableIn(path, force);

        // Everything is compiled before anything is written, so a failure leaves the folder as it was.
        using var compiler = new PtxCompiler(architecture);
        var modules = new List<(string Path, string Text)>();
        foreach (var (entry, path) in targets)
        {
            cancellationToken.ThrowIfCancellationRequested();
            modules.Add((path, Header(entry, architecture) + compiler.Compile(entry)));
        }
        Directory.CreateDirectory(ptxFolder);
        foreach (var (path, text) in modules) AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text), overwrite: true);
        output.WriteLine($"wrote {modules.Count} PTX files for {architecture} to {ptxFolder}");
        return ExitCodes.Success;
    }

    private static void List(TextWriter output)
    {
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine("GPU kernels (kernels/*.cs). DIFFUSION_KERNEL_VERSION_<op>=N picks a version; * marks the default, half = opt-in fp16 tensor cores.");
        int width = KernelCatalog.Entries.Max(e => e.Name.Length) + 2;
        foreach (var group in KernelCatalog.Entries.GroupBy(e => e.Op))
        {
            output.WriteLine(group.Key);
            int defaultVersion = KernelCatalog.DefaultVersion(group.Key);
            foreach (var e in group)
            {
                string mark = e.Version == defaultVersion ? "*" : " ";
                output.WriteLine(string.Format(inv, "  {0} v{1} {2} {3}{4}", mark, e.Version, e.Name.PadRight(width), e.Half ? "half: " : "", e.Description));
            }
        }
    }

    private static string Header(KernelEntry entry, string architecture) =>
        $"// {entry.Name}: {entry.Op} version {entry.Version} ({entry.Description}), compiled by ILGPU for {architecture}.\n" +
        (architecture == "sm_80" ? "" : "// ILGPU writes the lowest .target that has the capabilities used; the driver compiles it for the GPU it runs on.\n");
}
