using System.Globalization;
using System.Text;
using Diffusion.Kernels.Gpu;
using Diffusion.Kernels.Tests.IO;
using FluentAssertions;

namespace Diffusion.Kernels.Tests.Gpu;

/// <summary>
/// The PTX gate: every entry point of <see cref="KernelCatalog"/> (every op, version and generic instantiation)
/// compiled by ILGPU for sm_80 and sm_90 with no GPU, then assembled by ptxas for that architecture. It fails on an
/// ILGPU compile error, an assembler error (an unresolved extern such as a libdevice function is one), spills or a
/// stack frame (local memory) beyond the kernel's budget, or a tensor-core version whose SASS holds no HMMA. The
/// registers / spills / shared-memory table goes to the test output and, when DIFFUSION_PTX_GATE_TABLE names a
/// file, there too (.ci/run prints it). Skipped without ptxas unless DIFFUSION_REQUIRE_PTXAS is set (CI sets it).
/// </summary>
public sealed class PtxGateTests(ITestOutputHelper output)
{
    public const string TableVariable = "DIFFUSION_PTX_GATE_TABLE";

    /// <summary>
    /// The budget of every kernel: no spill stores or loads and no stack frame, so nothing lives in local memory.
    /// Every kernel meets it today; a kernel that cannot would be listed here with its allowance and the reason.
    /// </summary>
    private static (int SpillBytes, int StackBytes) Budget(KernelEntry entry) => (0, 0);

    [Fact]
    public void Every_catalog_kernel_assembles_for_sm_80_and_sm_90_within_its_budget()
    {
        string ptxas = Ptxas.Require();
        using var dir = new TempDirectory();
        var rows = new List<(KernelEntry Entry, AssembledKernel?[] Results)>();
        var failures = new List<string>();
        var compilers = PtxCompiler.Architectures.Select(a => new PtxCompiler(a)).ToList();
        try
        {
            foreach (var entry in KernelCatalog.Entries)
            {
                var results = new AssembledKernel?[compilers.Count];
                for (int i = 0; i < compilers.Count; i++)
                {
                    string arch = compilers[i].Architecture;
                    string ptx = compilers[i].Compile(entry);
                    ptx.Should().Contain(".version 7.8", "the gate's ptxas 11.8 reads PTX ISA 7.8 at most");
                    string file = Path.Combine(dir.Path, arch + "-" + PtxCompiler.FileName(entry));
                    File.WriteAllText(file, ptx);
                    try
                    {
                        results[i] = Ptxas.Assemble(ptxas, file, arch);
                    }
                    catch (InvalidOperationException e)
                    {
                        failures.Add($"{entry.Name} ({arch}): {e.Message}");
                        continue;
                    }
                    var (spillBudget, stackBudget) = Budget(entry);
                    var r = results[i]!;
                    if (r.SpillStoreBytes > spillBudget || r.SpillLoadBytes > spillBudget)
                        failures.Add($"{entry.Name} ({arch}) spills {r.SpillStoreBytes}/{r.SpillLoadBytes} bytes (budget {spillBudget})");
                    if (r.StackFrameBytes > stackBudget)
                        failures.Add($"{entry.Name} ({arch}) has a {r.StackFrameBytes}-byte stack frame (budget {stackBudget})");
                    if (entry.Half && !r.HasTensorCoreMma)
                        failures.Add($"{entry.Name} ({arch}) is a tensor-core version but its SASS holds no HMMA.16816.F32");
                }
                rows.Add((entry, results));
            }
        }
        finally
        {
            foreach (var c in compilers) c.Dispose();
        }

        string table = Table(rows, Ptxas.Version(ptxas));
        output.WriteLine(table);
        if (Environment.GetEnvironmentVariable(TableVariable) is { Length: > 0 } path) File.WriteAllText(path, table);
        failures.Should().BeEmpty();
    }

    private static string Table(List<(KernelEntry Entry, AssembledKernel?[] Results)> rows, string ptxasVersion)
    {
        var text = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        text.AppendLine(inv, $"PTX gate: {rows.Count} entry points, ILGPU → PTX ISA 7.8 → ptxas ({ptxasVersion}) for {string.Join(" and ", PtxCompiler.Architectures)}.");
        text.AppendLine("Budget: no spills, no stack frame (local memory), no unresolved externs; tensor-core (half) versions must hold HMMA.");
        int width = Math.Max(40, rows.Max(r => r.Entry.Name.Length) + 2);
        text.Append("kernel".PadRight(width)).Append("op/version".PadRight(22));
        foreach (string arch in PtxCompiler.Architectures) text.Append(inv, $"| {arch}: regs  spill st/ld  stack   smem B  mma ");
        text.AppendLine();
        foreach (var (entry, results) in rows)
        {
            text.Append(entry.Name.PadRight(width)).Append($"{entry.Op} v{entry.Version}{(entry.Half ? " (half)" : "")}".PadRight(22));
            foreach (var r in results)
            {
                text.Append(r is null
                    ? "| failed                                   "
                    : string.Format(inv, "|        {0,4}  {1,5}/{2,-5}  {3,5}  {4,7}  {5,-4}", r.Registers, r.SpillStoreBytes, r.SpillLoadBytes,
                        r.StackFrameBytes, r.SharedBytes, r.HasTensorCoreMma ? "yes" : "-"));
            }
            text.AppendLine();
        }
        return text.ToString();
    }
}
