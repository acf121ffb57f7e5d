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
        var entries = KernelCatalog.Entries;
        var archs = PtxCompiler.Architectures;
        var results = new AssembledKernel?[entries.Count, archs.Count];
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        // One ILGPU context per architecture, each on its own thread: the compiles and ptxas runs are independent.
        Parallel.For(0, archs.Count, a =>
        {
            string arch = archs[a];
            using var compiler = new PtxCompiler(arch);
            for (int e = 0; e < entries.Count; e++)
            {
                var entry = entries[e];
                string ptx = compiler.Compile(entry);
                if (!ptx.Contains(".version 7.8", StringComparison.Ordinal)) failures.Add($"{entry.Name} ({arch}): not PTX ISA 7.8, which the gate's ptxas 11.8 reads");
                string file = Path.Combine(dir.Path, arch + "-" + PtxCompiler.FileName(entry));
                File.WriteAllText(file, ptx);
                AssembledKernel r;
                try
                {
                    r = Ptxas.Assemble(ptxas, file, arch);
                }
                catch (InvalidOperationException ex)
                {
                    failures.Add($"{entry.Name} ({arch}): {ex.Message}");
                    continue;
                }
                results[e, a] = r;
                var (spillBudget, stackBudget) = Budget(entry);
                if (r.SpillStoreBytes > spillBudget || r.SpillLoadBytes > spillBudget)
                    failures.Add($"{entry.Name} ({arch}) spills {r.SpillStoreBytes}/{r.SpillLoadBytes} bytes (budget {spillBudget})");
                if (r.StackFrameBytes > stackBudget)
                    failures.Add($"{entry.Name} ({arch}) has a {r.StackFrameBytes}-byte stack frame (budget {stackBudget})");
                if (entry.Half && !r.HasTensorCoreMma)
                    failures.Add($"{entry.Name} ({arch}) is a tensor-core version but its SASS holds no HMMA.16816.F32");
            }
        });
        var rows = entries.Select((entry, e) => (entry, Enumerable.Range(0, archs.Count).Select(a => results[e, a]).ToArray())).ToList();

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
